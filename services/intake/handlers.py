"""intake's use cases: receive a widget request (HTTP or Kafka, one handler), learn its outcome
from ticket-core, time out what ticket-core never answered, keep conversations, and serve the
admin's settings and diagnostics."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError

from shared.contracts.api import Role
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
    AssistantTicketSettings,
    ConversationMessage,
    ConversationOut,
    MessageRole,
    RejectionReason,
    RequestStatus,
    TicketRequestRecord,
    WidgetEventType,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)

from .domain.requests import (
    AssistantSettings,
    RateLimits,
    Refused,
    check_request,
    ensure_manages_settings,
    settings_changes,
    ticket_text,
)
from .store.unit_of_work import UnitOfWork

SOURCE = "intake"
RESULTS_CONSUMER = "intake:command-results"
# Command ids are derived from request ids, so even two intake replicas racing on the same
# request send ticket-core the same command id, which it runs once.
COMMAND_ID_NAMESPACE = UUID("6f0d3c2e-9a57-4c1e-8f7b-2b3d9c4e5a61")
# The envelope needs a workspace; a request to an unknown assistant has none.
NO_WORKSPACE = UUID(int=0)


class NotFound(Exception):
    """Not in the caller's workspace (or nowhere): answered 404, never 403."""


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    rate: RateLimits
    request_timeout_seconds: int


def _now() -> datetime:
    return datetime.now(UTC)


def _fingerprint(request: WidgetTicketRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def _answer(row: RowMapping) -> WidgetRequestAnswer:
    return WidgetRequestAnswer(
        request_id=row["request_id"],
        status=RequestStatus(row["status"]),
        ticket_id=row["ticket_id"],
        ticket_number=row["ticket_number"],
        reason=RejectionReason(row["reason"]) if row["reason"] else None,
        detail=row["detail"],
    )


# -- widget requests ----------------------------------------------------------------------------


async def receive_request(
    uow: UnitOfWork, request: WidgetTicketRequest, limits: IntakeLimits
) -> WidgetRequestAnswer:
    """Decide at once what can be decided; otherwise ask ticket-core and answer `pending`.
    The same request id always gets the same answer and at most one ticket."""
    try:
        async with uow:
            if (earlier := await uow.requests.get(request.request_id)) is not None:
                return _repeat(earlier, request)
            now = _now()
            settings = await uow.assistants.get(request.assistant_id)
            recent = await uow.requests.recent(
                request.assistant_id, request.conversation.id, now, limits.rate.window_seconds
            )
            try:
                check_request(request, settings, recent, limits.rate)
            except Refused as refusal:
                answer = await _reject_at_once(uow, request, settings, refusal, now)
            else:
                assert settings is not None
                answer = await _ask_ticket_core(uow, request, settings, now)
            await uow.commit()
            return answer
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


async def _reject_at_once(
    uow: UnitOfWork,
    request: WidgetTicketRequest,
    settings: AssistantSettings | None,
    refusal: Refused,
    now: datetime,
) -> WidgetRequestAnswer:
    workspace_id = settings.workspace_id if settings else None
    await uow.requests.add(
        request_id=request.request_id,
        assistant_id=request.assistant_id,
        workspace_id=workspace_id,
        conversation_id=request.conversation.id[:200],
        fingerprint=_fingerprint(request),
        status=RequestStatus.REJECTED.value,
        reason=refusal.reason.value,
        detail=refusal.detail,
        last_sequence=1,
        received_at=now,
        decided_at=now,
    )
    answer = WidgetRequestAnswer(
        request_id=request.request_id,
        status=RequestStatus.REJECTED,
        reason=refusal.reason,
        detail=refusal.detail,
    )
    _publish_outcome(uow, request.assistant_id, workspace_id, request.conversation.id, answer, 1)
    return answer


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
    workspace_id: UUID | object | None,
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
            workspace_id=UUID(str(workspace_id)) if workspace_id else NO_WORKSPACE,
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


async def request_status(uow: UnitOfWork, request_id: str) -> WidgetRequestAnswer:
    async with uow:
        row = await uow.requests.get(request_id)
    if row is None:
        raise NotFound(f"No ticket request {request_id!r}; send it with POST first.")
    return _answer(row)


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
    uow: UnitOfWork, assistant_id: str, conversation_id: str, messages: list[ConversationMessage]
) -> int:
    """Later messages from the widget; returns how many were new."""
    async with uow:
        conversation = await uow.conversations.get(assistant_id, conversation_id)
        if conversation is None:
            raise NotFound(
                f"No conversation {conversation_id!r} for assistant {assistant_id!r}; "
                "it is known once a ticket request was sent for it."
            )
        before = len(await uow.conversations.messages(assistant_id, conversation_id))
        await _record_messages(
            uow, conversation["workspace_id"], assistant_id, conversation_id, messages
        )
        after = len(await uow.conversations.messages(assistant_id, conversation_id))
        await uow.commit()
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
    uow: UnitOfWork, workspace_id: UUID, assistant_id: str
) -> AssistantSettings | None:
    settings = await uow.assistants.get(assistant_id)
    if settings is not None and settings.workspace_id != workspace_id:
        raise NotFound(f"No assistant {assistant_id!r} in this workspace.")
    return settings


async def get_settings(
    uow: UnitOfWork, workspace_id: UUID, role: Role, assistant_id: str
) -> tuple[AssistantSettings, list[RowMapping]]:
    ensure_manages_settings(role)
    async with uow:
        settings = await _owned_settings(uow, workspace_id, assistant_id)
        if settings is None:
            raise NotFound(
                f"Assistant {assistant_id!r} has no ticket settings yet; save them with PUT."
            )
        return settings, await uow.assistants.history(assistant_id)


async def put_settings(
    uow: UnitOfWork,
    workspace_id: UUID,
    member_id: UUID,
    role: Role,
    assistant_id: str,
    wanted: AssistantTicketSettings,
) -> None:
    ensure_manages_settings(role)
    async with uow:
        before = await _owned_settings(uow, workspace_id, assistant_id)
        changes = settings_changes(
            before, wanted.ticket_creation_enabled, wanted.require_contact_info
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
            ),
            existed=before is not None,
            changed_by=str(member_id),
            changes=changes,
            now=now,
        )
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
        await uow.commit()


async def list_requests(
    uow: UnitOfWork,
    workspace_id: UUID,
    role: Role,
    assistant_id: str,
    status: RequestStatus | None,
    limit: int,
) -> list[TicketRequestRecord]:
    """Recent requests of an assistant of this workspace. Requests for an assistant nobody
    has configured belong to no workspace, so no workspace sees them (they may come from
    another team's widget); the widget itself was told `unknown_assistant`."""
    ensure_manages_settings(role)
    async with uow:
        if await _owned_settings(uow, workspace_id, assistant_id) is None:
            raise NotFound(
                f"No assistant {assistant_id!r} in this workspace; save its ticket settings "
                "first. Requests for an assistant nobody configured are refused with "
                "`unknown_assistant`, which the widget is told."
            )
        rows = await uow.requests.for_assistant(workspace_id, assistant_id, status, limit)
    return [
        TicketRequestRecord(
            **_answer(row).model_dump(),
            assistant_id=row["assistant_id"],
            conversation_id=row["conversation_id"],
            received_at=row["received_at"],
            decided_at=row["decided_at"],
        )
        for row in rows
    ]
