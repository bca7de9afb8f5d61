"""ticket-core's use cases: one short function per command or query. Each loads what the rule
needs, lets the domain decide, and commits the result with its events (unit of work)."""

import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from sqlalchemy.exc import IntegrityError

from shared.contracts.api import Role
from shared.contracts.commands import CommandResult, CommandResultType, CreateFromConversation
from shared.contracts.conversations import VisitorReplied
from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import TICKET_COMMAND_RESULTS
from shared.group_commit import GroupCommit

from .domain import permissions
from .domain.conversation_tickets import ConversationTicketRequest
from .domain.errors import (
    ConcurrentUpdate,
    Conflict,
    DomainError,
    NotFound,
    UnknownMember,
)
from .domain.members import Member, Workspace
from .domain.permissions import Action
from .domain.tickets import Ticket
from .store.repositories import IdempotentAnswer
from .store.ticket_list import StatusCounts, TicketFilter, TicketListPage
from .store.unit_of_work import Causation, UnitOfWork


@dataclass(frozen=True, slots=True)
class CreateTicket:
    workspace_id: UUID
    actor_id: UUID
    subject: str
    description: str
    priority: str | None = None
    assignee_id: UUID | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateTicket:
    """A PATCH: only the fields present in `changes` are changed."""

    workspace_id: UUID
    actor_id: UUID
    ticket_id: UUID
    changes: dict[str, Any] = field(default_factory=dict)
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class NewWorkspace:
    workspace: Workspace
    owner: Member


def _now() -> datetime:
    return datetime.now(UTC)


async def _acting_member(uow: UnitOfWork, workspace_id: UUID, member_id: UUID) -> Member:
    member = await uow.members.get(workspace_id, member_id)
    if member is None:
        raise UnknownMember("You are not a member of this workspace (any more).")
    return member


async def _ticket(uow: UnitOfWork, workspace_id: UUID, ticket_id: UUID) -> Ticket:
    ticket = await uow.tickets.get(workspace_id, ticket_id)
    if ticket is None:
        raise NotFound(f"No ticket {ticket_id} in this workspace.")
    return ticket


async def _member_named(
    uow: UnitOfWork, workspace_id: UUID, member_id: UUID | None
) -> Member | None:
    """The member an assignee id names in the workspace (the domain refuses an unknown one)."""
    return await uow.members.get(workspace_id, member_id) if member_id else None


# -- workspaces and members -------------------------------------------------------------------


async def create_workspace(uow: UnitOfWork, name: str, owner_email: str) -> NewWorkspace:
    async with uow:
        now = _now()
        workspace = Workspace.found(name, now)
        owner = Member.join(workspace.id, owner_email, Role.OWNER, now)
        await uow.workspaces.add(workspace)
        await uow.members.add(owner)
        await uow.commit()
    return NewWorkspace(workspace=workspace, owner=owner)


async def get_member(
    uow: UnitOfWork, workspace_id: UUID, member_id: UUID, *, actor_id: UUID | None = None
) -> Member:
    """A member; asked for by another member (`actor_id`), only if that one is a member too.
    A member asking for themself is the gateway's membership check: the lookup is the check."""
    async with uow:
        if actor_id is not None and actor_id != member_id:
            await _acting_member(uow, workspace_id, actor_id)
        return await _member(uow, workspace_id, member_id)


async def list_members(uow: UnitOfWork, workspace_id: UUID, actor_id: UUID) -> list[Member]:
    async with uow:
        await _acting_member(uow, workspace_id, actor_id)
        return await uow.members.list(workspace_id)


async def add_member(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, email: str, role: str
) -> Member:
    async with uow:
        actor = await _acting_member(uow, workspace_id, actor_id)
        member = Member.join(workspace_id, email, role, _now(), added_by=actor)
        await uow.members.add(member)
        await uow.commit()
    return member


async def change_member_role(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, member_id: UUID, role: str
) -> Member:
    async with uow:
        await uow.members.lock_workspace_roles(workspace_id)
        actor = await _acting_member(uow, workspace_id, actor_id)
        member = await _member(uow, workspace_id, member_id)
        member.change_role(actor, _now(), role, await uow.members.count_owners(workspace_id))
        await uow.members.update(member)
        await uow.commit()
    return member


async def remove_member(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, member_id: UUID
) -> None:
    async with uow:
        await uow.members.lock_workspace_roles(workspace_id)
        actor = await _acting_member(uow, workspace_id, actor_id)
        member = await _member(uow, workspace_id, member_id)
        now = _now()
        member.remove(actor, now, await uow.members.count_owners(workspace_id))
        # Their tickets go back to the queue rather than to someone who is gone.
        for ticket in await uow.tickets.assigned_to(workspace_id, member_id):
            ticket.assign(actor, now, None)
            await uow.tickets.update(ticket)
        await uow.members.remove(member)
        await uow.commit()


async def _member(uow: UnitOfWork, workspace_id: UUID, member_id: UUID) -> Member:
    member = await uow.members.get(workspace_id, member_id)
    if member is None:
        raise NotFound(f"No member {member_id} in this workspace.")
    return member


# -- tickets ------------------------------------------------------------------------------------


async def create_ticket(uow: UnitOfWork, command: CreateTicket) -> Ticket:
    """Create a ticket. Creates that arrive while another transaction of the same database
    runs are made together in the next one (`shared.group_commit`); each caller gets its own
    ticket or its own refusal."""
    return await _group_commit_of(uow).submit((uow, command))


async def _create_tickets(
    uow: UnitOfWork, commands: Sequence[tuple[UnitOfWork, CreateTicket]]
) -> list[Ticket | DomainError]:
    """Create tickets in one transaction, with a statement per table however many there are;
    per command its ticket or the domain's refusal. Each ticket's events carry the causation
    of the unit of work its caller gave."""
    async with uow:
        members = await uow.members.get_many(
            (command.workspace_id, member_id)
            for _, command in commands
            for member_id in (command.actor_id, command.assignee_id)
            if member_id is not None
        )
        numbers = await _TicketNumbers.take(
            uow,
            Counter(c.workspace_id for _, c in commands if (c.workspace_id, c.actor_id) in members),
        )
        now = _now()
        results: list[Ticket | DomainError] = []
        created: list[Ticket] = []
        answers: list[IdempotentAnswer] = []
        for caller, command in commands:
            try:
                ticket = _open_ticket(command, members, numbers.next, now)
            except DomainError as error:
                results.append(error)
                continue
            numbers.used(command.workspace_id)
            uow.caused_by(caller.causation, ticket)
            created.append(ticket)
            results.append(ticket)
            if command.idempotency_key:
                answers.append(
                    IdempotentAnswer(
                        command.workspace_id,
                        command.actor_id,
                        command.idempotency_key,
                        _fingerprint(command),
                        ticket.snapshot(),
                        now,
                    )
                )
        await numbers.give_back_unused()
        await uow.tickets.add_all(created)
        await uow.idempotency.remember_all(answers)
        await uow.commit()
    return results


def _open_ticket(
    command: CreateTicket,
    members: Mapping[tuple[UUID, UUID], Member],
    number_of: Callable[[UUID], int],
    now: datetime,
) -> Ticket:
    actor = members.get((command.workspace_id, command.actor_id))
    if actor is None:
        raise UnknownMember("You are not a member of this workspace (any more).")
    assignee_id = command.assignee_id
    return Ticket.open_by(
        actor,
        number=number_of(command.workspace_id),
        subject=command.subject,
        description=command.description,
        priority=command.priority,
        assignee_id=assignee_id,
        assignee=members.get((command.workspace_id, assignee_id)) if assignee_id else None,
        now=now,
    )


# Creates that arrive while a transaction of creates runs go together in the next one.
CREATES_PER_TRANSACTION = 500
CreateCall = tuple[UnitOfWork, CreateTicket]  # the caller's unit of work: its causation


async def _write_creates(calls: Sequence[CreateCall]) -> list[Ticket | DomainError]:
    return await _create_tickets(calls[0][0], calls)


_group_commits: WeakKeyDictionary[object, GroupCommit[CreateCall, Ticket]] = WeakKeyDictionary()


def _group_commit_of(uow: UnitOfWork) -> GroupCommit[CreateCall, Ticket]:
    """The group commit of the unit of work's database (its session factory)."""
    group_commit = _group_commits.get(uow.session_factory)
    if group_commit is None:
        group_commit = GroupCommit(
            "ticket-core:creates", _write_creates, max_size=CREATES_PER_TRANSACTION
        )
        _group_commits[uow.session_factory] = group_commit
    return group_commit


async def create_ticket_once(uow: UnitOfWork, command: CreateTicket) -> dict[str, Any]:
    """Create, unless this Idempotency-Key was seen: then answer what the first call answered."""
    if not command.idempotency_key:
        return (await create_ticket(uow, command)).snapshot()
    fingerprint = _fingerprint(command)
    async with uow:
        await _acting_member(uow, command.workspace_id, command.actor_id)
        earlier = await _earlier_answer(uow, command, fingerprint)
    if earlier is not None:
        return earlier
    try:
        return (await create_ticket(uow, command)).snapshot()
    except IntegrityError:
        # A concurrent retry with the same key committed first: answer as it did.
        async with uow:
            earlier = await _earlier_answer(uow, command, fingerprint)
        if earlier is None:
            raise
        return earlier


async def _earlier_answer(
    uow: UnitOfWork, command: CreateTicket, fingerprint: str
) -> dict[str, Any] | None:
    assert command.idempotency_key is not None
    earlier = await uow.idempotency.find(
        command.workspace_id, command.actor_id, command.idempotency_key
    )
    if earlier is None:
        return None
    if earlier["request_fingerprint"] != fingerprint:
        raise Conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request; use a new key per ticket.",
            field="Idempotency-Key",
        )
    response: dict[str, Any] = earlier["response"]
    if await uow.tickets.get(command.workspace_id, UUID(str(response["id"]))) is None:
        raise Conflict(
            "created_ticket_deleted",
            f"The ticket this Idempotency-Key created (#{response['number']}) has been deleted "
            "since; send a new key to create another.",
            field="Idempotency-Key",
        )
    return response


def _fingerprint(command: CreateTicket) -> str:
    body = [command.subject, command.description, command.priority, str(command.assignee_id)]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


async def get_ticket(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, ticket_id: UUID
) -> Ticket:
    async with uow:
        permissions.ensure_allowed(await _acting_member(uow, workspace_id, actor_id), Action.VIEW)
        return await _ticket(uow, workspace_id, ticket_id)


async def list_tickets(uow: UnitOfWork, actor_id: UUID, spec: TicketFilter) -> TicketListPage:
    async with uow:
        return await uow.tickets.page(await _viewers_filter(uow, actor_id, spec))


async def count_tickets(uow: UnitOfWork, actor_id: UUID, spec: TicketFilter) -> StatusCounts:
    """Tickets per status matching the filters other than status: the dashboard's tabs."""
    async with uow:
        return await uow.tickets.counts(await _viewers_filter(uow, actor_id, spec))


async def _viewers_filter(uow: UnitOfWork, actor_id: UUID, spec: TicketFilter) -> TicketFilter:
    """The filter as the actor means it (`me` is them), once they may view tickets."""
    actor = await _acting_member(uow, spec.workspace_id, actor_id)
    permissions.ensure_allowed(actor, Action.VIEW)
    return replace(spec, assignee=actor.id) if spec.assignee == "me" else spec


async def update_ticket(uow: UnitOfWork, command: UpdateTicket) -> Ticket:
    async with _changing_ticket(uow, command.workspace_id, command.actor_id, command.ticket_id) as (
        actor,
        ticket,
    ):
        ticket.ensure_version(command.expected_version)
        assignee_id = command.changes.get("assignee_id")
        assignee = await _member_named(
            uow, command.workspace_id, UUID(str(assignee_id)) if assignee_id else None
        )
        ticket.patch(actor, _now(), command.changes, assignee)
    return ticket


async def add_note(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, ticket_id: UUID, body: str
) -> tuple[Ticket, UUID]:
    async with _changing_ticket(uow, workspace_id, actor_id, ticket_id) as (actor, ticket):
        note_id = ticket.add_note(actor, _now(), body)
    return ticket, note_id


async def link_conversation(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, ticket_id: UUID, conversation_id: str
) -> Ticket:
    async with _changing_ticket(uow, workspace_id, actor_id, ticket_id) as (actor, ticket):
        linked_to = await uow.tickets.ticket_linked_to(workspace_id, conversation_id)
        ticket.link_conversation(actor, _now(), conversation_id, linked_to)
    return ticket


async def unlink_conversation(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, ticket_id: UUID, conversation_id: str
) -> Ticket:
    async with _changing_ticket(uow, workspace_id, actor_id, ticket_id) as (actor, ticket):
        ticket.unlink_conversation(actor, _now(), conversation_id)
    return ticket


async def delete_ticket(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, ticket_id: UUID
) -> None:
    async with _changing_ticket(uow, workspace_id, actor_id, ticket_id) as (actor, ticket):
        ticket.delete(actor, _now())


@asynccontextmanager
async def _changing_ticket(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, ticket_id: UUID
) -> AsyncIterator[tuple[Member, Ticket]]:
    """Load the actor and the ticket for the change made in the block, then save the ticket
    (with the events the change recorded) in the same transaction. A refusal saves nothing."""
    async with uow:
        actor = await _acting_member(uow, workspace_id, actor_id)
        ticket = await _ticket(uow, workspace_id, ticket_id)
        yield actor, ticket
        await uow.tickets.update(ticket)
        await uow.commit()


# -- workspace settings -------------------------------------------------------------------------


async def get_workspace(uow: UnitOfWork, workspace_id: UUID, actor_id: UUID) -> Workspace:
    async with uow:
        await _acting_member(uow, workspace_id, actor_id)
        return await _workspace(uow, workspace_id)


async def set_auto_close(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, days: int
) -> Workspace:
    async with uow:
        actor = await _acting_member(uow, workspace_id, actor_id)
        workspace = await _workspace(uow, workspace_id)
        workspace.set_auto_close(actor, _now(), days)
        await uow.workspaces.update(workspace)
        await uow.commit()
    return workspace


async def _workspace(uow: UnitOfWork, workspace_id: UUID) -> Workspace:
    workspace = await uow.workspaces.get(workspace_id)
    if workspace is None:
        raise NotFound(f"No workspace {workspace_id}.")
    return workspace


# -- messages from other services -----------------------------------------------------------------

COMMANDS_CONSUMER = "ticket-core:commands"
CONVERSATIONS_CONSUMER = "ticket-core:conversations"


async def create_ticket_from_conversation(uow: UnitOfWork, command: EventEnvelope) -> None:
    """One `ticket.create_from_conversation` command: a batch of one."""
    await create_tickets_from_conversations(uow, [command])


async def create_tickets_from_conversations(
    uow: UnitOfWork, commands: Sequence[EventEnvelope]
) -> None:
    """Run a batch of `ticket.create_from_conversation` commands, each once, in one
    transaction, and answer each on `ticket.command-results.v1` in the same commit. They are
    decided in order: a conversation that already has a ticket (made earlier in the batch, too)
    gets that ticket as the answer, never a second one; a refusal is an answer, not a failure
    of the batch. A command that does not validate raises (the consumer then takes the batch
    one command at a time, and dead-letters only that one)."""
    requests = [(command, _conversation_ticket_request(command)) for command in commands]
    async with uow:
        fresh = await uow.first_deliveries(COMMANDS_CONSUMER, [c.id for c, _ in requests])
        to_run = []
        for command, request in requests:
            if str(command.id) in fresh:
                fresh.discard(str(command.id))  # a second copy in the batch is a duplicate too
                to_run.append((command, request))
        workspaces = await uow.workspaces.existing(r.workspace_id for _, r in to_run)
        linked = await uow.tickets.linked_tickets(
            (r.workspace_id, r.conversation_id) for _, r in to_run
        )
        numbers = await _TicketNumbers.take(
            uow, Counter(r.workspace_id for _, r in to_run if r.workspace_id in workspaces)
        )
        created: list[Ticket] = []
        now = _now()
        for command, request in to_run:
            conversation = (request.workspace_id, request.conversation_id)
            current = linked.get(conversation)
            result = request.answer_without_creating(request.workspace_id in workspaces, current)
            if result is None:
                try:
                    ticket = request.create(numbers.next(request.workspace_id), current, now)
                except DomainError as error:
                    result = request.refused(error)
                else:
                    numbers.used(request.workspace_id)
                    uow.caused_by(Causation.of(command), ticket, *([current] if current else []))
                    if current is not None:
                        await uow.tickets.update(current)  # its link goes before the new one's
                    created.append(ticket)
                    linked[conversation] = ticket
                    result = request.created(ticket)
            uow.send(TICKET_COMMAND_RESULTS.name, _result_envelope(command, result))
        await numbers.give_back_unused()
        await uow.tickets.add_all(created)
        await uow.commit()


def _conversation_ticket_request(command: EventEnvelope) -> ConversationTicketRequest:
    return ConversationTicketRequest(
        command_id=command.id,
        workspace_id=command.workspace_id,
        request=CreateFromConversation.model_validate(command.data),
        actor=command.actor,
    )


class _TicketNumbers:
    """New ticket numbers of a batch: a block per workspace taken at once (as many as could be
    needed), handed out in order; those left over are given back before commit. The rows stay
    locked meanwhile, so nobody else sees a number that is then given back: gap-free."""

    def __init__(self, uow: UnitOfWork, wanted: Mapping[UUID, int], first: dict[UUID, int]):
        self._uow = uow
        self._unused = dict(wanted)
        self._next = first

    @classmethod
    async def take(cls, uow: UnitOfWork, wanted: Mapping[UUID, int]) -> "_TicketNumbers":
        return cls(uow, wanted, await uow.workspaces.take_ticket_numbers(wanted))

    def next(self, workspace_id: UUID) -> int:
        return self._next[workspace_id]

    def used(self, workspace_id: UUID) -> None:
        self._next[workspace_id] += 1
        self._unused[workspace_id] -= 1

    async def give_back_unused(self) -> None:
        await self._uow.workspaces.give_back_ticket_numbers(self._unused)


def _result_envelope(command: EventEnvelope, result: CommandResult) -> EventEnvelope:
    return EventEnvelope(
        type=CommandResultType.RESULT,
        source="ticket-core",
        workspace_id=command.workspace_id,
        subject=str(command.id),
        sequence=1,
        correlation_id=command.correlation_id or str(command.id),
        causation_id=str(command.id),
        actor=command.actor,
        data=result.model_dump(mode="json"),
    )


async def reopen_on_visitor_reply(uow: UnitOfWork, event: EventEnvelope) -> None:
    """The visitor wrote again: the conversation's ticket hears it (domain: `visitor_replied`)."""
    data = VisitorReplied.model_validate(event.data)
    async with uow:
        if not await uow.first_delivery(CONVERSATIONS_CONSUMER, event.id):
            return
        ticket = await _linked_ticket(uow, event.workspace_id, data.conversation_id)
        if ticket is not None:
            ticket.visitor_replied(_now())
            await uow.tickets.update(ticket)
        await uow.commit()


async def _linked_ticket(
    uow: UnitOfWork, workspace_id: UUID, conversation_id: str
) -> Ticket | None:
    linked = await uow.tickets.ticket_linked_to(workspace_id, conversation_id)
    return await uow.tickets.get(workspace_id, linked) if linked else None


async def close_resolved_tickets(new_uow: Callable[[], UnitOfWork], now: datetime) -> int:
    """Close every resolved ticket idle for its workspace's auto-close period; returns how
    many this call closed. Safe with several replicas: a ticket another replica closed first
    is a lost version race here, and skipped."""
    async with (uow := new_uow()):
        due = await uow.tickets.resolved_long_enough(now)
    closed = 0
    for workspace_id, ticket_id in due:
        try:
            async with (uow := new_uow()):
                ticket = await uow.tickets.get(workspace_id, ticket_id)
                if ticket is None:
                    continue
                ticket.close_if_resolved(now)
                if not ticket.changed:
                    continue
                await uow.tickets.update(ticket)
                await uow.commit()
                closed += 1
        except ConcurrentUpdate:
            continue
    return closed
