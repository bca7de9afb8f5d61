"""intake's use cases: admit a widget call (key, origin, limits), receive a widget request
(HTTP or Kafka, one handler), learn its outcome from ticket-core, time out what ticket-core
never answered, keep conversations, count refusals, and serve the admin's settings and
diagnostics. Each loads what it needs, lets the domain decide, and saves."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from uuid import UUID

from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError

from shared.contracts.api import Capability
from shared.contracts.commands import CommandOutcome, CommandResult
from shared.contracts.envelope import EventEnvelope
from shared.contracts.widget import (
    ASSISTANTS_LISTED_MAX,
    WIDGET_KEY_MAX_LENGTH,
    AssistantTicketSettings,
    ConversationMessage,
    ConversationOut,
    RefusalCounts,
    RequestStatus,
    TicketRequestRecord,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)
from shared.group_commit import GroupCommit

from .domain.admission import CallKind
from .domain.admission import WidgetGuard as WidgetGuard  # the bootstrap builds it from here
from .domain.assistants import Assistant, Credential, wanted_origins
from .domain.conversations import Conversation
from .domain.requests import (
    AssistantSettings,
    AssistantTaken,
    RateLimits,
    RateWindows,
    Refused,
    check_caller,
    ensure_manages_settings,
)
from .domain.ticket_requests import TicketRequest, newest_requests, refused_answer
from .domain.widget_access import (
    origin_or_none,
    preflight_allowed,
    refusals_per_minute,
)
from .store.unit_of_work import UnitOfWork

RESULTS_CONSUMER = "intake:command-results"
# At most this many concurrent HTTP requests in one transaction (see `RequestGroups`).
REQUEST_GROUP_MAX = 200
# What the caller may do, as ticket-core answered it (the internal credential carries it).
Capabilities = Collection[Capability]


class NotFound(Exception):
    """Not in the caller's workspace (or nowhere): answered 404, never 403."""


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    rate: RateLimits
    request_timeout_seconds: int
    refusal_sample_size: int = 100
    refusal_retention_days: int = 30


def _now() -> datetime:
    return datetime.now(UTC)


# -- admitting a widget call -------------------------------------------------------------------


async def admit_widget_call(
    uow: UnitOfWork,
    guard: WidgetGuard,
    *,
    widget_key: str | None,
    origin: str | None,
    address: str,
    kind: CallKind,
) -> AssistantSettings:
    """The checks every widget call passes first (see `WidgetGuard.admit`)."""
    settings = None
    if widget_key and len(widget_key) <= WIDGET_KEY_MAX_LENGTH:
        async with uow:
            settings = await uow.assistants.by_widget_key(widget_key)
    return guard.admit(
        settings, widget_key=widget_key, origin=origin, address=address, kind=kind, now=_now()
    )


async def admit_preflight(
    uow: UnitOfWork, guard: WidgetGuard, *, origin: str | None, address: str
) -> bool:
    """Whether to answer a CORS preflight from `origin` (see `preflight_allowed`)."""
    if not guard.may_read(address) or (canonical := origin_or_none(origin)) is None:
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
    guard.count(refusal, assistant_id, _now(), request_id, conversation_id)


# -- widget requests ----------------------------------------------------------------------------


async def receive_request(
    uow: UnitOfWork,
    request: WidgetTicketRequest,
    limits: IntakeLimits,
    guard: WidgetGuard,
    widget_key: str | None,
) -> WidgetRequestAnswer:
    """Decide at once what can be decided; otherwise ask ticket-core and answer `pending`.
    A refusal stores and publishes nothing: it is counted, and sampled for the admin."""
    [answer] = await receive_requests(uow, [(request, widget_key)], limits, guard)
    return answer


WidgetCall = tuple[WidgetTicketRequest, str | None]  # a request, and the widget key it came with


async def receive_requests(
    uow: UnitOfWork,
    calls: Sequence[WidgetCall],
    limits: IntakeLimits,
    guard: WidgetGuard,
) -> list[WidgetRequestAnswer]:
    """`receive_request` for many requests (with each one's widget key) in one transaction,
    an answer for each: decided in this order as if they came one by one (the rate windows
    count the earlier accepted ones, the same id again gets the same answer and no second
    ticket); a refusal answers its request and fails none of the others."""
    try:
        batch = await _receive_batch(uow, calls, limits.rate)
    except IntegrityError:
        # A request id committed meanwhile by a concurrent delivery (HTTP and Kafka at once):
        # decided again, it is found and answered again.
        batch = await _receive_batch(uow, calls, limits.rate)
    # Counted once the batch is decided for good (a retried batch counts nothing twice).
    for refusal, assistant_id, request in batch.refusals:
        record_refusal(guard, refusal, assistant_id, request.request_id, request.conversation.id)
    return batch.answers


class RequestGroups:
    """Widget requests this process receives over HTTP at the same time, decided together in
    one transaction (`receive_requests`; `shared.group_commit`), so that concurrent requests
    cost about one transaction instead of one each, waiting in turn for SQLite's one writer."""

    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        limits: IntakeLimits,
        guard: WidgetGuard,
        max_size: int = REQUEST_GROUP_MAX,
    ) -> None:
        async def write(calls: Sequence[WidgetCall]) -> list[WidgetRequestAnswer]:
            return await receive_requests(new_uow(), calls, limits, guard)

        self._group_commit = GroupCommit[WidgetCall, WidgetRequestAnswer](
            "intake:widget-requests", write, max_size=max_size
        )

    async def receive(
        self, request: WidgetTicketRequest, widget_key: str | None
    ) -> WidgetRequestAnswer:
        return await self._group_commit.submit((request, widget_key))


@dataclass(slots=True)
class _Batch:
    answers: list[WidgetRequestAnswer]
    # Each refusal, with the assistant it counts for (None: no configured one).
    refusals: list[tuple[Refused, str | None, WidgetTicketRequest]]


async def _receive_batch(
    uow: UnitOfWork, calls: Sequence[tuple[WidgetTicketRequest, str | None]], rate: RateLimits
) -> _Batch:
    batch = _Batch([], [])
    accepted: list[tuple[TicketRequest, WidgetTicketRequest]] = []
    async with uow:
        assistants = await uow.assistants.get_many({request.assistant_id for request, _ in calls})
        # The caller is checked first: a call without the key learns, and costs, no more.
        callers = [_check_caller(assistants, request, key) for request, key in calls]
        admitted = [
            request
            for (request, _), caller in zip(calls, callers, strict=True)
            if not isinstance(caller, Refused)
        ]
        now = _now()
        earlier = await uow.requests.get_many({r.request_id for r in admitted}) if admitted else {}
        windows = (
            await uow.requests.rate_windows(
                {(r.assistant_id, r.conversation.id) for r in admitted}, now, rate.window_seconds
            )
            if admitted
            else RateWindows({}, {})
        )
        for (request, widget_key), caller in zip(calls, callers, strict=True):
            try:
                if isinstance(caller, Refused):
                    raise caller
                if (known := earlier.get(request.request_id)) is not None:
                    batch.answers.append(known.answer_again(request))
                    continue
                recent = windows.recent(request.assistant_id, request.conversation.id)
                ticket_request = TicketRequest.decide(
                    request, caller, recent, rate, widget_key, now
                )
            except Refused as refusal:
                # Counted for the assistant when it is configured, as every refusal is.
                counted_for = request.assistant_id if request.assistant_id in assistants else None
                batch.refusals.append((refusal, counted_for, request))
                batch.answers.append(refused_answer(request.request_id, refusal))
                continue
            windows.count(request.assistant_id, request.conversation.id)
            earlier[request.request_id] = ticket_request
            accepted.append((ticket_request, request))
            batch.answers.append(ticket_request.answer())
        if accepted:
            await _store_accepted(uow, accepted)
        await uow.commit()
    return batch


def _check_caller(
    assistants: dict[str, AssistantSettings], request: WidgetTicketRequest, key: str | None
) -> AssistantSettings | Refused:
    try:
        return check_caller(request.assistant_id, assistants.get(request.assistant_id), key)
    except Refused as refusal:
        return refusal


async def _store_accepted(
    uow: UnitOfWork, accepted: list[tuple[TicketRequest, WidgetTicketRequest]]
) -> None:
    # The requests' rows before the conversations', as when an outcome arrives: two
    # transactions then never wait for each other's rows (on PostgreSQL).
    await uow.requests.add_all([ticket_request for ticket_request, _ in accepted])
    conversations = await uow.conversations.get_many(
        {(t.assistant_id, t.conversation_id) for t, _ in accepted}
    )
    for ticket_request, request in accepted:
        key = (ticket_request.assistant_id, ticket_request.conversation_id)
        if (conversation := conversations.get(key)) is None:
            conversation = conversations[key] = Conversation(*key, ticket_request.workspace_id)
        conversation.take(request.conversation.messages)
    await uow.conversations.save_all(list(conversations.values()))


@dataclass(slots=True)
class _Caller:
    """The assistant a widget call names; a refusal counts for it once it is known."""

    assistant_id: str
    settings: AssistantSettings | None = None

    async def check(self, uow: UnitOfWork, widget_key: str | None) -> AssistantSettings:
        self.settings = await uow.assistants.get(self.assistant_id)
        return check_caller(self.assistant_id, self.settings, widget_key)

    def count(self, guard: WidgetGuard, refusal: Refused, *ids: str | None) -> None:
        known = self.settings.assistant_id if self.settings else None
        record_refusal(guard, refusal, known, *ids)


async def request_status(
    uow: UnitOfWork, request_id: str, assistant_id: str
) -> WidgetRequestAnswer:
    """A request of this assistant (the caller's key's): stored, or among its sampled
    refusals (a refusal is kept only there, and only the newest)."""
    async with uow:
        stored = await uow.requests.get(request_id)
        if stored is not None and stored.assistant_id == assistant_id:
            return stored.answer()
        refused = await uow.refusals.samples(assistant_id, 1, request_id=request_id)
    if not refused:
        raise NotFound(
            f"No ticket request {request_id!r} for this assistant; send it with POST first "
            "(refusals are kept only among the assistant's newest)."
        )
    return refused[0].answer()


# -- outcomes from ticket-core ------------------------------------------------------------------


async def record_command_result(uow: UnitOfWork, message: EventEnvelope) -> None:
    await record_command_results(uow, [message])


async def record_command_results(uow: UnitOfWork, messages: Sequence[EventEnvelope]) -> None:
    """Record a batch of ticket-core's answers in one transaction, each once (the inbox
    drops redeliveries, also a second copy within the batch), in their order; the requests
    and conversations they decide are loaded, and written, once for the batch."""
    results = [(message, CommandResult.model_validate(message.data)) for message in messages]
    async with uow:
        fresh = await uow.first_deliveries(RESULTS_CONSUMER, [m.id for m, _ in results])
        new: list[CommandResult] = []
        for message, result in results:
            if str(message.id) in fresh:
                fresh.discard(str(message.id))
                new.append(result)
        # Missing: another intake deployment's command, or not a widget request.
        requests = await uow.requests.by_commands({r.command_id for r in new}) if new else {}
        decided: dict[str, TicketRequest] = {}
        tickets: dict[tuple[str, str], UUID] = {}
        for result in new:
            if (ticket_request := requests.get(result.command_id)) is None:
                continue
            ticket_request.take_result(result, _now())
            decided[ticket_request.request_id] = ticket_request
            if result.outcome is not CommandOutcome.REJECTED and result.ticket_id is not None:
                key = (ticket_request.assistant_id, ticket_request.conversation_id)
                tickets[key] = result.ticket_id
        await uow.requests.save_all(list(decided.values()))
        # Each conversation's ticket as the last answer of the batch for it said.
        await uow.conversations.link_tickets(tickets)
        await uow.commit()


async def expire_pending(
    new_uow: Callable[[], UnitOfWork], now: datetime, timeout_seconds: int
) -> int:
    """Reject requests ticket-core has not answered in time; returns how many."""
    async with (uow := new_uow()):
        stale = await uow.requests.pending_before(now - timedelta(seconds=timeout_seconds))
        for ticket_request in stale:
            ticket_request.expire(timeout_seconds, _now())
        await uow.requests.save_all(stale)
        await uow.commit()
    return len(stale)


# -- conversations -------------------------------------------------------------------------------


async def add_messages(
    uow: UnitOfWork,
    guard: WidgetGuard,
    widget_key: str | None,
    assistant_id: str,
    conversation_id: str,
    messages: list[ConversationMessage],
) -> int:
    """Later messages from the widget; returns how many were new."""
    caller = _Caller(assistant_id)
    try:
        async with uow:
            await caller.check(uow, widget_key)
            conversation = await _conversation(uow, assistant_id, conversation_id)
            added = conversation.add_later(messages)
            await uow.conversations.save(conversation)
            await uow.commit()
    except Refused as refusal:
        caller.count(guard, refusal, None, conversation_id)
        raise
    return added


async def _conversation(uow: UnitOfWork, assistant_id: str, conversation_id: str) -> Conversation:
    conversation = await uow.conversations.get(assistant_id, conversation_id)
    if conversation is None:
        raise NotFound(
            f"No conversation {conversation_id!r} for assistant {assistant_id!r}; "
            "it is known once a ticket request was sent for it."
        )
    return conversation


async def get_conversation(
    uow: UnitOfWork, workspace_id: UUID, conversation_id: str
) -> ConversationOut:
    async with uow:
        conversation = await uow.conversations.find(workspace_id, conversation_id)
    if conversation is None:
        raise NotFound(f"No conversation {conversation_id!r} in this workspace.")
    return conversation.out()


# -- admin: settings and diagnostics ------------------------------------------------------------


async def _owned_settings(
    uow: UnitOfWork, workspace_id: UUID, assistant_id: str
) -> AssistantSettings | None:
    """This workspace's assistant, or None if nobody configured it; another workspace's is
    not found (nothing of it shows)."""
    settings = await uow.assistants.get(assistant_id)
    if settings is not None and settings.workspace_id != workspace_id:
        raise NotFound(f"No assistant {assistant_id!r} in this workspace.")
    return settings


async def _owned_assistant(
    uow: UnitOfWork, workspace_id: UUID, assistant_id: str
) -> Assistant | None:
    """The assistant to change, or None if nobody configured it; another workspace's is
    `assistant_taken`."""
    assistant = await uow.assistants.load(assistant_id)
    if assistant is not None and assistant.settings.workspace_id != workspace_id:
        raise AssistantTaken(assistant_id)
    return assistant


def _not_configured(assistant_id: str) -> NotFound:
    return NotFound(f"Assistant {assistant_id!r} has no ticket settings yet; save them with PUT.")


async def _configured(uow: UnitOfWork, workspace_id: UUID, assistant_id: str) -> AssistantSettings:
    if (settings := await _owned_settings(uow, workspace_id, assistant_id)) is None:
        raise _not_configured(assistant_id)
    return settings


async def list_assistants(
    uow: UnitOfWork, workspace_id: UUID, capabilities: Capabilities
) -> list[AssistantSettings]:
    """The assistants this workspace saved ticket settings for, by id."""
    ensure_manages_settings(capabilities)
    async with uow:
        return await uow.assistants.of_workspace(workspace_id, ASSISTANTS_LISTED_MAX)


async def get_settings(
    uow: UnitOfWork, workspace_id: UUID, capabilities: Capabilities, assistant_id: str
) -> tuple[AssistantSettings, list[RowMapping]]:
    ensure_manages_settings(capabilities)
    async with uow:
        settings = await _configured(uow, workspace_id, assistant_id)
        return settings, await uow.assistants.history(assistant_id)


async def put_settings(
    uow: UnitOfWork,
    workspace_id: UUID,
    member_id: UUID,
    capabilities: Capabilities,
    assistant_id: str,
    wanted: AssistantTicketSettings,
) -> None:
    ensure_manages_settings(capabilities)
    origins = wanted_origins(wanted)
    async with uow:
        before = await _owned_assistant(uow, workspace_id, assistant_id)
        assistant = Assistant.configure(
            before, workspace_id, assistant_id, wanted, origins, member_id, _now()
        )
        await uow.assistants.save(assistant)
        await uow.commit()


async def replace_credential(
    uow: UnitOfWork,
    workspace_id: UUID,
    member_id: UUID,
    capabilities: Capabilities,
    assistant_id: str,
    what: Credential,
) -> str:
    ensure_manages_settings(capabilities)
    async with uow:
        assistant = await _owned_assistant(uow, workspace_id, assistant_id)
        if assistant is None:
            raise _not_configured(assistant_id)
        value = assistant.replace_credential(what, member_id, _now())
        await uow.assistants.save(assistant)
        await uow.commit()
    return value


replace_widget_key = partial(replace_credential, what="widget_key")
replace_identity_secret = partial(replace_credential, what="identity_secret")


async def list_requests(
    uow: UnitOfWork,
    workspace_id: UUID,
    capabilities: Capabilities,
    assistant_id: str,
    status: RequestStatus | None,
    limit: int,
) -> list[TicketRequestRecord]:
    """Recent requests of an assistant of this workspace, newest first (see
    `newest_requests`). Refusals for an assistant nobody configured are only counted."""
    ensure_manages_settings(capabilities)
    async with uow:
        await _listed_assistant(uow, workspace_id, assistant_id)
        stored = await uow.requests.for_assistant(workspace_id, assistant_id, status, limit)
        refused = (
            await uow.refusals.samples(assistant_id, limit)
            if status in (None, RequestStatus.REJECTED)
            else []
        )
    return newest_requests(stored, refused, limit)


async def _listed_assistant(uow: UnitOfWork, workspace_id: UUID, assistant_id: str) -> None:
    if await _owned_settings(uow, workspace_id, assistant_id) is None:
        raise NotFound(
            f"No assistant {assistant_id!r} in this workspace; save its ticket settings "
            "first. Requests for an assistant nobody configured are refused with "
            "`unknown_assistant`, which the widget is told."
        )


async def refusal_counts(
    uow: UnitOfWork, workspace_id: UUID, capabilities: Capabilities, assistant_id: str, minutes: int
) -> RefusalCounts:
    """How many widget calls of this workspace's assistant were refused, per reason and
    minute, over the last `minutes`."""
    ensure_manages_settings(capabilities)
    since = _now().replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    async with uow:
        await _configured(uow, workspace_id, assistant_id)
        counted = await uow.refusals.counts(assistant_id, since)
    return refusals_per_minute(assistant_id, counted)


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
