"""intake's use cases: admit a widget call (key, origin, limits), receive a widget request
(HTTP or Kafka, one handler), learn its outcome from ticket-core, time out what ticket-core
never answered, keep conversations, count refusals, and serve the admin's settings and
diagnostics."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5

import structlog
from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError

from shared.contracts.api import Capability
from shared.contracts.commands import CommandOutcome, CommandResult, CommandType
from shared.contracts.conversations import ConversationEventType
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import (
    INTAKE_ASSISTANTS,
    INTAKE_CONVERSATIONS,
    INTAKE_REQUEST_OUTCOMES,
    TICKET_COMMANDS,
)
from shared.contracts.widget import (
    WIDGET_KEY_MAX_LENGTH,
    AssistantTicketSettings,
    ConversationMessage,
    ConversationOut,
    MessageRole,
    RefusalCount,
    RefusalCounts,
    RejectionReason,
    RequestStatus,
    TicketRequestRecord,
    WidgetEventType,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)

from .domain.requests import (
    AssistantSettings,
    AssistantTaken,
    InvalidSettings,
    RateLimits,
    Refused,
    check_caller,
    check_conversation_growth,
    check_request,
    ensure_manages_settings,
    settings_changes,
    ticket_text,
)
from .domain.widget_access import (
    UNATTRIBUTED,
    Network,
    RefusalTally,
    TokenBuckets,
    canonical_origin,
    check_origin,
    check_widget_key,
    clean_allowed_origins,
    new_identity_secret,
    new_widget_key,
    preflight_allowed,
    rate_limited,
    unknown_widget_key,
)
from .store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

SOURCE = "intake"
RESULTS_CONSUMER = "intake:command-results"
# Command ids are derived from request ids, so even two intake replicas racing on the same
# request send ticket-core the same command id, which it runs once.
COMMAND_ID_NAMESPACE = UUID("6f0d3c2e-9a57-4c1e-8f7b-2b3d9c4e5a61")


class NotFound(Exception):
    """Not in the caller's workspace (or nowhere): answered 404, never 403."""


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    rate: RateLimits
    request_timeout_seconds: int
    refusal_sample_size: int = 100
    refusal_retention_days: int = 30


@dataclass
class WidgetGuard:
    """This process's limits on widget calls: token buckets per client address (calls that
    write; polls and preflights have their own, larger ones) and per assistant, and the
    refusals not yet written. In memory: each intake process limits on its own."""

    address_writes: TokenBuckets
    address_reads: TokenBuckets
    assistant_writes: TokenBuckets
    tally: RefusalTally
    trusted_proxies: tuple[Network, ...] = ()
    clock: Callable[[], float] = field(default=time.monotonic)


def _now() -> datetime:
    return datetime.now(UTC)


def _fingerprint(request: WidgetTicketRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def _answer(row: RowMapping) -> WidgetRequestAnswer:
    return WidgetRequestAnswer(
        request_id=row["request_id"],
        status=RequestStatus(row["status"]),
        ticket_id=row.get("ticket_id"),
        ticket_number=row.get("ticket_number"),
        reason=RejectionReason(row["reason"]) if row["reason"] else None,
        detail=row["detail"],
    )


def _refused_answer(request_id: str, refusal: Refused) -> WidgetRequestAnswer:
    return WidgetRequestAnswer(
        request_id=request_id,
        status=RequestStatus.REJECTED,
        reason=refusal.reason,
        detail=refusal.detail,
    )


# -- admitting a widget call -------------------------------------------------------------------


async def admit_widget_call(
    uow: UnitOfWork,
    guard: WidgetGuard,
    *,
    widget_key: str | None,
    origin: str | None,
    address: str,
    kind: Literal["write", "read"],
) -> AssistantSettings:
    """The checks every widget call passes before anything else, cheapest first (the body's
    size was checked by the listener): key, origin, per address, per assistant. A refusal
    raises `Refused`; it is counted, never stored as a row."""
    settings = None
    if widget_key and len(widget_key) <= WIDGET_KEY_MAX_LENGTH:
        async with uow:
            settings = await uow.assistants.by_widget_key(widget_key)
    try:
        if settings is None:
            raise unknown_widget_key(widget_key)
        check_widget_key(
            widget_key, settings.widget_key, settings.previous_widget_key, settings.assistant_id
        )
        check_origin(origin, settings.allowed_origins, settings.assistant_id)
        buckets = guard.address_writes if kind == "write" else guard.address_reads
        if (wait := buckets.take(address, guard.clock())) is not None:
            raise rate_limited(wait, "from your address")
        # Only a caller with the key, within its own address's budget, spends the assistant's.
        if (
            kind == "write"
            and (wait := guard.assistant_writes.take(settings.assistant_id, guard.clock()))
            is not None
        ):
            raise rate_limited(wait, f"for assistant {settings.assistant_id!r}")
    except Refused as refusal:
        guard.tally.record(
            settings.assistant_id if settings else UNATTRIBUTED,
            refusal.reason,
            refusal.detail,
            _now(),
        )
        raise
    return settings


async def admit_preflight(
    uow: UnitOfWork, guard: WidgetGuard, *, origin: str | None, address: str
) -> bool:
    """Whether to answer a CORS preflight from `origin` (see `preflight_allowed`)."""
    if guard.address_reads.take(address, guard.clock()) is not None:
        return False
    try:
        canonical = canonical_origin(origin or "")
    except ValueError:
        return False
    async with uow:
        listed = await uow.assistants.origin_listed(canonical)
        some_open = listed or await uow.assistants.some_open()
    return preflight_allowed(origin, listed, some_open)


def record_refusal(
    guard: WidgetGuard,
    refusal: Refused,
    assistant_id: str | None,
    request_id: str | None = None,
    conversation_id: str | None = None,
) -> None:
    guard.tally.record(
        assistant_id or UNATTRIBUTED,
        refusal.reason,
        refusal.detail,
        _now(),
        request_id=request_id,
        conversation_id=conversation_id,
    )


# -- widget requests ----------------------------------------------------------------------------


async def receive_request(
    uow: UnitOfWork,
    request: WidgetTicketRequest,
    limits: IntakeLimits,
    guard: WidgetGuard,
    widget_key: str | None,
) -> WidgetRequestAnswer:
    """Decide at once what can be decided; otherwise ask ticket-core and answer `pending`.
    The same request id always gets the same answer and at most one ticket. A refusal
    stores and publishes nothing: it is counted, and sampled for the admin."""
    settings: AssistantSettings | None = None
    try:
        async with uow:
            now = _now()
            settings = await uow.assistants.get(request.assistant_id)
            check_caller(request.assistant_id, settings, widget_key)
            if (earlier := await uow.requests.get(request.request_id)) is not None:
                return _repeat(earlier, request)
            recent = await uow.requests.recent(
                request.assistant_id, request.conversation.id, now, limits.rate.window_seconds
            )
            check_request(request, settings, recent, limits.rate, widget_key)
            assert settings is not None
            answer = await _ask_ticket_core(uow, request, settings, now)
            await uow.commit()
            return answer
    except Refused as refusal:
        record_refusal(
            guard,
            refusal,
            settings.assistant_id if settings else None,
            request.request_id,
            request.conversation.id,
        )
        return _refused_answer(request.request_id, refusal)
    except IntegrityError:
        # The same request id committed by a concurrent delivery (HTTP and Kafka at once).
        async with uow:
            earlier = await uow.requests.get(request.request_id)
        if earlier is None:
            raise
        return _repeat(earlier, request)


def _repeat(earlier: RowMapping, request: WidgetTicketRequest) -> WidgetRequestAnswer:
    if earlier["assistant_id"] != request.assistant_id:
        return WidgetRequestAnswer(
            request_id=request.request_id,
            status=RequestStatus.REJECTED,
            reason=RejectionReason.REQUEST_ID_REUSED,
            detail="This request_id was used by another assistant; use a new id per request.",
        )
    return _answer(earlier)


async def _ask_ticket_core(
    uow: UnitOfWork, request: WidgetTicketRequest, settings: AssistantSettings, now: datetime
) -> WidgetRequestAnswer:
    workspace_id = UUID(str(settings.workspace_id))
    await _record_messages(
        uow,
        workspace_id,
        request.assistant_id,
        request.conversation.id,
        request.conversation.messages,
    )
    command_id = uuid5(COMMAND_ID_NAMESPACE, request.request_id)
    await uow.requests.add(
        request_id=request.request_id,
        assistant_id=request.assistant_id,
        workspace_id=workspace_id,
        conversation_id=request.conversation.id,
        fingerprint=_fingerprint(request),
        command_id=command_id,
        status=RequestStatus.PENDING.value,
        received_at=now,
    )
    subject, description = ticket_text(request)
    uow.send(
        TICKET_COMMANDS.name,
        EventEnvelope(
            id=command_id,
            type=CommandType.CREATE_FROM_CONVERSATION,
            source=SOURCE,
            workspace_id=workspace_id,
            subject=request.conversation.id,
            sequence=1,
            correlation_id=request.request_id,
            causation_id=request.request_id,
            actor=_visitor(request.assistant_id, request.conversation.id),
            data={
                "conversation_id": request.conversation.id,
                "subject": subject,
                "description": description,
            },
        ),
    )
    return WidgetRequestAnswer(request_id=request.request_id, status=RequestStatus.PENDING)


def _visitor(assistant_id: str, conversation_id: str) -> Actor:
    return Actor(type="visitor", id=f"{assistant_id}/{conversation_id}")


def _publish_outcome(
    uow: UnitOfWork,
    assistant_id: str,
    workspace_id: UUID | object,
    conversation_id: str | None,
    answer: WidgetRequestAnswer,
    sequence: int,
) -> None:
    kind = (
        WidgetEventType.REQUEST_CREATED
        if answer.status is RequestStatus.CREATED
        else WidgetEventType.REQUEST_REJECTED
    )
    uow.send(
        INTAKE_REQUEST_OUTCOMES.name,
        EventEnvelope(
            type=kind,
            source=SOURCE,
            workspace_id=UUID(str(workspace_id)),
            subject=answer.request_id,
            sequence=sequence,
            correlation_id=answer.request_id,
            causation_id=answer.request_id,
            actor=Actor.system(SOURCE),
            data={
                **answer.model_dump(mode="json"),
                "assistant_id": assistant_id,
                "conversation_id": conversation_id,
            },
        ),
    )


async def request_status(
    uow: UnitOfWork, request_id: str, assistant_id: str
) -> WidgetRequestAnswer:
    """A request of this assistant (the caller's key's): stored, or among its sampled
    refusals (a refusal is kept only there, and only the newest)."""
    async with uow:
        row = await uow.requests.get(request_id)
        if row is not None and row["assistant_id"] == assistant_id:
            return _answer(row)
        sample = await uow.refusals.sample_of(assistant_id, request_id)
    if sample is None:
        raise NotFound(
            f"No ticket request {request_id!r} for this assistant; send it with POST first "
            "(refusals are kept only among the assistant's newest)."
        )
    return WidgetRequestAnswer(
        request_id=request_id,
        status=RequestStatus.REJECTED,
        reason=RejectionReason(sample["reason"]),
        detail=sample["detail"],
    )


# -- outcomes from ticket-core ------------------------------------------------------------------


async def record_command_result(uow: UnitOfWork, message: EventEnvelope) -> None:
    result = CommandResult.model_validate(message.data)
    async with uow:
        if not await uow.first_delivery(RESULTS_CONSUMER, message.id):
            return
        row = await uow.requests.by_command(result.command_id)
        if row is None:  # another intake deployment's command, or not a widget request
            await uow.commit()
            return
        if result.outcome is CommandOutcome.REJECTED:
            values: dict[str, Any] = {
                "status": RequestStatus.REJECTED.value,
                "reason": RejectionReason.TICKET_CORE_REJECTED.value,
                "detail": f"{result.reason}: {result.detail}",
            }
        else:
            # A late answer after a timeout corrects it: the ticket does exist.
            values = {
                "status": RequestStatus.CREATED.value,
                "ticket_id": result.ticket_id,
                "ticket_number": result.ticket_number,
                "reason": None,
                "detail": None,
            }
            await uow.conversations.link_ticket(
                row["assistant_id"],
                row["conversation_id"],
                result.ticket_id,  # type: ignore[arg-type]
            )
        await _decide(uow, row, values)
        await uow.commit()


async def _decide(uow: UnitOfWork, row: RowMapping, values: dict[str, Any]) -> None:
    sequence = await uow.requests.decide(row["request_id"], decided_at=_now(), **values)
    decided = {**row, **values}
    _publish_outcome(
        uow,
        row["assistant_id"],
        row["workspace_id"],
        row["conversation_id"],
        _answer(decided),  # type: ignore[arg-type]
        sequence,
    )


async def expire_pending(
    new_uow: Callable[[], UnitOfWork], now: datetime, timeout_seconds: int
) -> int:
    """Reject requests ticket-core has not answered in time; returns how many."""
    async with (uow := new_uow()):
        stale = await uow.requests.pending_before(now - timedelta(seconds=timeout_seconds))
        for row in stale:
            await _decide(
                uow,
                row,
                {
                    "status": RequestStatus.REJECTED.value,
                    "reason": RejectionReason.TICKET_CORE_TIMEOUT.value,
                    "detail": f"No answer from the ticket service in {timeout_seconds}s; "
                    "the request may still be completed later, check its status again.",
                },
            )
        await uow.commit()
    return len(stale)


# -- conversations -------------------------------------------------------------------------------


async def _record_messages(
    uow: UnitOfWork,
    workspace_id: UUID,
    assistant_id: str,
    conversation_id: str,
    messages: list[ConversationMessage],
) -> None:
    """Keep the conversation as received, appending only messages not stored yet; new visitor
    words on a conversation that has a ticket are announced (ticket-core may reopen it)."""
    conversation = await uow.conversations.get(assistant_id, conversation_id)
    if conversation is None:
        await uow.conversations.add(assistant_id, conversation_id, workspace_id)
    known = {
        (m.role.value, m.text, m.sent_at.isoformat())
        for m in await uow.conversations.messages(assistant_id, conversation_id)
    }
    new = [m for m in messages if (m.role.value, m.text, m.sent_at.isoformat()) not in known]
    await uow.conversations.append(assistant_id, conversation_id, new)
    visitor_wrote = [m for m in new if m.role is MessageRole.VISITOR]
    if conversation is not None and conversation["ticket_id"] and visitor_wrote:
        uow.send(
            INTAKE_CONVERSATIONS.name,
            EventEnvelope(
                type=ConversationEventType.VISITOR_REPLIED,
                source=SOURCE,
                workspace_id=workspace_id,
                subject=conversation_id,
                sequence=await uow.conversations.next_sequence(assistant_id, conversation_id),
                actor=_visitor(assistant_id, conversation_id),
                data={
                    "conversation_id": conversation_id,
                    "sent_at": max(m.sent_at for m in visitor_wrote).isoformat(),
                },
            ),
        )


async def add_messages(
    uow: UnitOfWork,
    guard: WidgetGuard,
    widget_key: str | None,
    assistant_id: str,
    conversation_id: str,
    messages: list[ConversationMessage],
) -> int:
    """Later messages from the widget; returns how many were new. A conversation keeps at
    most MESSAGES_PER_CONVERSATION_MAX_COUNT messages."""
    settings: AssistantSettings | None = None
    try:
        async with uow:
            settings = await uow.assistants.get(assistant_id)
            check_caller(assistant_id, settings, widget_key)
            conversation = await uow.conversations.get(assistant_id, conversation_id)
            if conversation is None:
                raise NotFound(
                    f"No conversation {conversation_id!r} for assistant {assistant_id!r}; "
                    "it is known once a ticket request was sent for it."
                )
            before = await uow.conversations.message_count(assistant_id, conversation_id)
            check_conversation_growth(before, len(messages))
            await _record_messages(
                uow, conversation["workspace_id"], assistant_id, conversation_id, messages
            )
            after = await uow.conversations.message_count(assistant_id, conversation_id)
            await uow.commit()
    except Refused as refusal:
        record_refusal(
            guard, refusal, settings.assistant_id if settings else None, None, conversation_id
        )
        raise
    return after - before


async def get_conversation(
    uow: UnitOfWork, workspace_id: UUID, conversation_id: str
) -> ConversationOut:
    async with uow:
        conversation = await uow.conversations.find(workspace_id, conversation_id)
        if conversation is None:
            raise NotFound(f"No conversation {conversation_id!r} in this workspace.")
        messages = await uow.conversations.messages(conversation["assistant_id"], conversation_id)
    return ConversationOut(
        id=conversation_id,
        assistant_id=conversation["assistant_id"],
        messages=messages,
        ticket_id=conversation["ticket_id"],
    )


# -- admin: settings and diagnostics ------------------------------------------------------------


async def _owned_settings(
    uow: UnitOfWork, workspace_id: UUID, assistant_id: str, *, writing: bool = False
) -> AssistantSettings | None:
    """This workspace's assistant, or None if nobody configured it. Another workspace's is
    not found when reading (nothing of it shows) and `assistant_taken` when writing."""
    settings = await uow.assistants.get(assistant_id)
    if settings is not None and settings.workspace_id != workspace_id:
        if writing:
            raise AssistantTaken(assistant_id)
        raise NotFound(f"No assistant {assistant_id!r} in this workspace.")
    return settings


def _not_configured(assistant_id: str) -> NotFound:
    return NotFound(f"Assistant {assistant_id!r} has no ticket settings yet; save them with PUT.")


async def get_settings(
    uow: UnitOfWork, workspace_id: UUID, capabilities: Collection[Capability], assistant_id: str
) -> tuple[AssistantSettings, list[RowMapping]]:
    ensure_manages_settings(capabilities)
    async with uow:
        settings = await _owned_settings(uow, workspace_id, assistant_id)
        if settings is None:
            raise _not_configured(assistant_id)
        return settings, await uow.assistants.history(assistant_id)


def _announce(
    uow: UnitOfWork,
    workspace_id: UUID,
    member_id: UUID,
    assistant_id: str,
    sequence: int,
    changes: dict[str, Any],
    now: datetime,
) -> None:
    uow.send(
        INTAKE_ASSISTANTS.name,
        EventEnvelope(
            type=WidgetEventType.SETTINGS_CHANGED,
            source=SOURCE,
            time=now,
            workspace_id=workspace_id,
            subject=assistant_id,
            sequence=sequence,
            actor=Actor(type="member", id=str(member_id)),
            data={"changes": changes},
        ),
    )


async def put_settings(
    uow: UnitOfWork,
    workspace_id: UUID,
    member_id: UUID,
    capabilities: Collection[Capability],
    assistant_id: str,
    wanted: AssistantTicketSettings,
) -> None:
    ensure_manages_settings(capabilities)
    try:
        origins = (
            clean_allowed_origins(wanted.allowed_origins)
            if wanted.allowed_origins is not None
            else None
        )
    except ValueError as error:
        raise InvalidSettings(f"allowed_origins: {error}.") from error
    async with uow:
        before = await _owned_settings(uow, workspace_id, assistant_id, writing=True)
        changes = settings_changes(
            before,
            wanted.ticket_creation_enabled,
            wanted.require_contact_info,
            origins,
            wanted.identity_verification,
        )
        if not changes:
            return
        now = _now()
        sequence = await uow.assistants.save(
            AssistantSettings(
                assistant_id=assistant_id,
                workspace_id=workspace_id,
                ticket_creation_enabled=wanted.ticket_creation_enabled,
                require_contact_info=wanted.require_contact_info,
                widget_key=before.widget_key if before else new_widget_key(),
                allowed_origins=(
                    origins if origins is not None else (before.allowed_origins if before else ())
                ),
                identity_verification=(
                    wanted.identity_verification
                    if wanted.identity_verification is not None
                    else bool(before and before.identity_verification)
                ),
            ),
            existed=before is not None,
            changed_by=str(member_id),
            changes=changes,
            now=now,
        )
        _announce(uow, workspace_id, member_id, assistant_id, sequence, changes, now)
        await uow.commit()


async def _replace_credential(
    uow: UnitOfWork,
    workspace_id: UUID,
    member_id: UUID,
    capabilities: Collection[Capability],
    assistant_id: str,
    what: Literal["widget_key", "identity_secret"],
) -> str:
    """A new widget key (the old one is refused from now on) or identity secret; the change
    is in the history and announced, without the value."""
    ensure_manages_settings(capabilities)
    async with uow:
        settings = await _owned_settings(uow, workspace_id, assistant_id, writing=True)
        if settings is None:
            raise _not_configured(assistant_id)
        value = new_widget_key() if what == "widget_key" else new_identity_secret()
        if what == "widget_key":
            await uow.assistants.replace_widget_key(assistant_id, value)
        else:
            await uow.assistants.set_identity_secret(assistant_id, value)
        changes: dict[str, Any] = {
            what: {
                "from": "(replaced)" if what == "widget_key" or settings.identity_secret else None,
                "to": "(new)",
            }
        }
        now = _now()
        sequence = await uow.assistants.save(
            settings,
            existed=True,
            changed_by=str(member_id),
            changes=changes,
            now=now,
        )
        _announce(uow, workspace_id, member_id, assistant_id, sequence, changes, now)
        await uow.commit()
    return value


async def replace_widget_key(
    uow: UnitOfWork,
    workspace_id: UUID,
    member_id: UUID,
    capabilities: Collection[Capability],
    assistant_id: str,
) -> str:
    return await _replace_credential(
        uow, workspace_id, member_id, capabilities, assistant_id, "widget_key"
    )


async def replace_identity_secret(
    uow: UnitOfWork,
    workspace_id: UUID,
    member_id: UUID,
    capabilities: Collection[Capability],
    assistant_id: str,
) -> str:
    return await _replace_credential(
        uow, workspace_id, member_id, capabilities, assistant_id, "identity_secret"
    )


async def list_requests(
    uow: UnitOfWork,
    workspace_id: UUID,
    capabilities: Collection[Capability],
    assistant_id: str,
    status: RequestStatus | None,
    limit: int,
) -> list[TicketRequestRecord]:
    """Recent requests of an assistant of this workspace, newest first: those stored (every
    accepted one, and its outcome) and, for refusals, the newest sampled ones. Refusals for
    an assistant nobody configured belong to no workspace and are only counted."""
    ensure_manages_settings(capabilities)
    async with uow:
        if await _owned_settings(uow, workspace_id, assistant_id) is None:
            raise NotFound(
                f"No assistant {assistant_id!r} in this workspace; save its ticket settings "
                "first. Requests for an assistant nobody configured are refused with "
                "`unknown_assistant`, which the widget is told."
            )
        rows = await uow.requests.for_assistant(workspace_id, assistant_id, status, limit)
        samples = (
            await uow.refusals.samples(assistant_id, limit)
            if status in (None, RequestStatus.REJECTED)
            else []
        )
    records = [
        TicketRequestRecord(
            **_answer(row).model_dump(),
            assistant_id=row["assistant_id"],
            conversation_id=row["conversation_id"],
            received_at=row["received_at"],
            decided_at=row["decided_at"],
        )
        for row in rows
    ] + [
        TicketRequestRecord(
            request_id=sample["request_id"] or "",
            status=RequestStatus.REJECTED,
            reason=RejectionReason(sample["reason"]),
            detail=sample["detail"],
            assistant_id=assistant_id,
            conversation_id=sample["conversation_id"],
            received_at=sample["received_at"],
            decided_at=sample["received_at"],
        )
        for sample in samples
    ]
    records.sort(key=lambda record: record.received_at, reverse=True)
    return records[:limit]


async def refusal_counts(
    uow: UnitOfWork,
    workspace_id: UUID,
    capabilities: Collection[Capability],
    assistant_id: str,
    minutes: int,
) -> RefusalCounts:
    """How many widget calls of this workspace's assistant were refused, per reason and
    minute, over the last `minutes`."""
    ensure_manages_settings(capabilities)
    since = _now().replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    async with uow:
        if await _owned_settings(uow, workspace_id, assistant_id) is None:
            raise _not_configured(assistant_id)
        rows = await uow.refusals.counts(assistant_id, since)
    items = [
        RefusalCount(
            minute=row["minute"], reason=RejectionReason(row["reason"]), count=row["count"]
        )
        for row in rows
    ]
    totals: dict[str, int] = {}
    for item in items:
        totals[item.reason.value] = totals.get(item.reason.value, 0) + item.count
    return RefusalCounts(assistant_id=assistant_id, items=items, totals=totals)


async def flush_refusals(
    new_uow: Callable[[], UnitOfWork], guard: WidgetGuard, limits: IntakeLimits
) -> int:
    """Write the refusals counted since the last flush in one transaction, keep only the
    newest samples per assistant, forget counts past their retention; returns how many."""
    batch = guard.tally.drain()
    if not batch.counts:
        return 0
    try:
        async with (uow := new_uow()):
            await uow.refusals.write(batch, limits.refusal_sample_size)
            await uow.refusals.prune(_now() - timedelta(days=limits.refusal_retention_days))
            await uow.commit()
    except Exception:
        guard.tally.put_back(batch)
        raise
    return sum(batch.counts.values())
