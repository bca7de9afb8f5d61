"""A widget conversation asks for a ticket (`ticket.create_from_conversation`). A conversation
has at most one ticket being worked: asked again, it gets that ticket; once that ticket is
finished (closed or spam), a new ticket takes the conversation's link over."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.contracts.commands import (
    CommandOutcome,
    CommandResult,
    CommandType,
    CreateFromConversation,
)
from shared.contracts.envelope import Actor

from .errors import DomainError
from .tickets import SystemProcess, Ticket

WIDGET = SystemProcess("widget")


@dataclass(frozen=True, slots=True)
class ConversationTicketRequest:
    command_id: UUID
    workspace_id: UUID
    request: CreateFromConversation
    actor: Actor

    @property
    def conversation_id(self) -> str:
        return self.request.conversation_id

    def answer_without_creating(
        self, workspace_exists: bool, linked: Ticket | None
    ) -> CommandResult | None:
        """The answer when no ticket is to be made; None when one is. `linked`: the ticket the
        conversation is linked to now, if any."""
        if not workspace_exists:
            return self.rejected("unknown_workspace", f"No workspace {self.workspace_id}.")
        if linked is not None and not linked.finished:
            return self._answer(CommandOutcome.ALREADY_LINKED, ticket=linked)
        return None

    def create(self, number: int, linked: Ticket | None, now: datetime) -> Ticket:
        """The conversation's new ticket; a finished `linked` ticket gives up the link to it."""
        data = self.request
        ticket = Ticket.create(
            workspace_id=self.workspace_id,
            number=number,
            subject=data.subject,
            description=data.description,
            priority=data.priority.value if data.priority else None,
            assignee_id=None,
            actor=self.actor,
            now=now,
            conversation_id=data.conversation_id,
        )
        if linked is not None:
            linked.unlink_conversation(WIDGET, now, data.conversation_id)
        return ticket

    def created(self, ticket: Ticket) -> CommandResult:
        return self._answer(CommandOutcome.CREATED, ticket=ticket)

    def refused(self, error: DomainError) -> CommandResult:
        return self.rejected(error.code, error.detail)

    def rejected(self, reason: str, detail: str) -> CommandResult:
        return self._answer(CommandOutcome.REJECTED, reason=reason, detail=detail)

    def _answer(
        self,
        outcome: CommandOutcome,
        *,
        ticket: Ticket | None = None,
        reason: str | None = None,
        detail: str | None = None,
    ) -> CommandResult:
        return CommandResult(
            command_id=self.command_id,
            command_type=CommandType.CREATE_FROM_CONVERSATION,
            outcome=outcome,
            ticket_id=ticket.id if ticket else None,
            ticket_number=ticket.number if ticket else None,
            reason=reason,
            detail=detail,
        )
