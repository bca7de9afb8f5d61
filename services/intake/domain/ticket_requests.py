"""A widget's ticket request, from its arrival to its outcome.

It is decided at once: refused (nothing of it is kept), or accepted as `pending` with a command
asking ticket-core for the ticket. ticket-core's answer makes it `created` or `rejected`; with
no answer in time it is `rejected` (`ticket_core_timeout`), and a late answer corrects that,
since the ticket does exist. Its id is the widget's: the same id again gets the same answer,
and the same id from another assistant is refused (`request_id_reused`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

from shared.contracts.commands import CommandOutcome, CommandResult, CommandType
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import INTAKE_REQUEST_OUTCOMES, TICKET_COMMANDS
from shared.contracts.widget import (
    RejectionReason,
    RequestStatus,
    TicketRequestRecord,
    WidgetEventType,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)

from .conversations import visitor_actor
from .events import SOURCE, RecordsMessages
from .requests import (
    AssistantSettings,
    RateLimits,
    RecentRequests,
    Refused,
    check_request,
    ticket_text,
)
from .widget_access import RefusalSample

# Command ids are derived from request ids, so even two intake replicas racing on the same
# request send ticket-core the same command id, which it runs once.
COMMAND_ID_NAMESPACE = UUID("6f0d3c2e-9a57-4c1e-8f7b-2b3d9c4e5a61")


def refused_answer(request_id: str, refusal: Refused) -> WidgetRequestAnswer:
    return WidgetRequestAnswer(
        request_id=request_id,
        status=RequestStatus.REJECTED,
        reason=refusal.reason,
        detail=refusal.detail,
    )


@dataclass(slots=True)
class TicketRequest(RecordsMessages):
    request_id: str
    assistant_id: str
    workspace_id: UUID
    conversation_id: str
    fingerprint: str
    command_id: UUID
    received_at: datetime
    status: RequestStatus = RequestStatus.PENDING
    reason: RejectionReason | None = None
    detail: str | None = None
    ticket_id: UUID | None = None
    ticket_number: int | None = None
    decided_at: datetime | None = None

    @classmethod
    def decide(
        cls,
        request: WidgetTicketRequest,
        settings: AssistantSettings | None,
        recent: RecentRequests,
        limits: RateLimits,
        widget_key: str | None,
        now: datetime,
    ) -> TicketRequest:
        """A new request: `Refused` with the first reason it cannot become a ticket, or
        pending, with the command that asks ticket-core for the ticket."""
        accepted = check_request(request, settings, recent, limits, widget_key)
        ticket_request = cls(
            request_id=request.request_id,
            assistant_id=request.assistant_id,
            workspace_id=UUID(str(accepted.workspace_id)),
            conversation_id=request.conversation.id,
            fingerprint=hashlib.sha256(request.model_dump_json().encode()).hexdigest(),
            command_id=uuid5(COMMAND_ID_NAMESPACE, request.request_id),
            received_at=now,
        )
        ticket_request._ask_ticket_core(*ticket_text(request))
        return ticket_request

    def answer_again(self, request: WidgetTicketRequest) -> WidgetRequestAnswer:
        """The same request id once more: the same answer, unless another assistant sends it."""
        if request.assistant_id != self.assistant_id:
            return refused_answer(
                request.request_id,
                Refused(
                    RejectionReason.REQUEST_ID_REUSED,
                    "This request_id was used by another assistant; use a new id per request.",
                ),
            )
        return self.answer()

    def take_result(self, result: CommandResult, now: datetime) -> None:
        """ticket-core's answer to the command; after a timeout it corrects the timeout."""
        if result.outcome is CommandOutcome.REJECTED:
            self._reject(
                RejectionReason.TICKET_CORE_REJECTED, f"{result.reason}: {result.detail}", now
            )
            return
        self.status = RequestStatus.CREATED
        self.ticket_id, self.ticket_number = result.ticket_id, result.ticket_number
        self.reason = self.detail = None
        self._decided(now)

    def expire(self, timeout_seconds: int, now: datetime) -> None:
        """ticket-core did not answer in time (it still may: see `take_result`)."""
        if self.status is RequestStatus.PENDING:
            self._reject(
                RejectionReason.TICKET_CORE_TIMEOUT,
                f"No answer from the ticket service in {timeout_seconds}s; "
                "the request may still be completed later, check its status again.",
                now,
            )

    def answer(self) -> WidgetRequestAnswer:
        return WidgetRequestAnswer.model_validate(self, from_attributes=True)

    def record(self) -> TicketRequestRecord:
        """The request as the admin's diagnostics list it."""
        return TicketRequestRecord.model_validate(self, from_attributes=True)

    def _reject(self, reason: RejectionReason, detail: str, now: datetime) -> None:
        self.status, self.reason, self.detail = RequestStatus.REJECTED, reason, detail
        self._decided(now)

    def _ask_ticket_core(self, subject: str, description: str) -> None:
        self._send(
            TICKET_COMMANDS,
            EventEnvelope(
                id=self.command_id,
                type=CommandType.CREATE_FROM_CONVERSATION,
                source=SOURCE,
                workspace_id=self.workspace_id,
                subject=self.conversation_id,
                sequence=1,
                correlation_id=self.request_id,
                causation_id=self.request_id,
                actor=visitor_actor(self.assistant_id, self.conversation_id),
                data={
                    "conversation_id": self.conversation_id,
                    "subject": subject,
                    "description": description,
                },
            ),
        )

    def _decided(self, now: datetime) -> None:
        self.decided_at = now
        self._send(
            INTAKE_REQUEST_OUTCOMES,
            EventEnvelope(
                type=(
                    WidgetEventType.REQUEST_CREATED
                    if self.status is RequestStatus.CREATED
                    else WidgetEventType.REQUEST_REJECTED
                ),
                source=SOURCE,
                workspace_id=self.workspace_id,
                subject=self.request_id,
                sequence=self._next_sequence(),
                correlation_id=self.request_id,
                causation_id=self.request_id,
                actor=Actor.system(SOURCE),
                data={
                    **self.answer().model_dump(mode="json"),
                    "assistant_id": self.assistant_id,
                    "conversation_id": self.conversation_id,
                },
            ),
        )


def newest_requests(
    stored: list[TicketRequest], refused: list[RefusalSample], limit: int
) -> list[TicketRequestRecord]:
    """An assistant's requests for its admin, newest first: the stored ones (every accepted
    request, with its outcome) and the sampled refusals (decided as they arrived)."""
    records = [r.record() for r in stored] + [
        TicketRequestRecord(
            **sample.answer().model_dump(),
            assistant_id=sample.assistant_id,
            conversation_id=sample.conversation_id,
            received_at=sample.received_at,
            decided_at=sample.received_at,
        )
        for sample in refused
    ]
    records.sort(key=lambda record: record.received_at, reverse=True)
    return records[:limit]
