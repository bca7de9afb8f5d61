"""activity-log's use cases: record an event in its subject's order, read a history, report
what is held back."""

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy.exc import IntegrityError

from shared.contracts.api import Capability
from shared.contracts.envelope import EventEnvelope

from .domain.entries import ActivityEntry, may_read_history
from .domain.ordering import Verdict, place
from .store.unit_of_work import UnitOfWork

CONSUMER = "activity-log"

log = structlog.get_logger(__name__)


async def record_event(uow: UnitOfWork, event: EventEnvelope) -> bool:
    """Apply the event once and in order; False when it was a redelivery.

    After a gap the event is held, and applied (with any held ones after it) as soon as the
    missing one arrives; an event whose sequence is already taken is held as a conflict.
    """
    try:
        async with uow:
            recorded = await _record(uow, event)
            await uow.commit()
    except IntegrityError:
        # Another replica stored the same event between our check and our commit, which
        # its inbox row shows; any other failed constraint is no duplicate and is raised.
        async with uow:
            if await uow.was_delivered(CONSUMER, event.id):
                return False
        raise
    return recorded


async def record_events(uow: UnitOfWork, events: list[EventEnvelope]) -> int:
    """Apply a batch in one transaction (a rebuild: one writer); returns how many were new."""
    async with uow:
        recorded = [await _record(uow, event) for event in events]
        await uow.commit()
    return sum(recorded)


async def _record(uow: UnitOfWork, event: EventEnvelope) -> bool:
    if not await uow.first_delivery(CONSUMER, event.id):
        return False
    last = await uow.positions.last_applied(event.subject)
    verdict = place(last or 0, event.sequence)
    if verdict is Verdict.APPLY:
        applied = await _apply_in_order(uow, event)
        await uow.positions.advance(event.subject, event.workspace_id, applied, new=last is None)
    else:
        log.warning(
            "event_held",
            reason=verdict.value,
            subject=event.subject,
            sequence=event.sequence,
            last_applied=last or 0,
        )
        await uow.positions.hold(
            event, "gap" if verdict is Verdict.HOLD else "conflict", datetime.now(UTC)
        )
    return True


async def _apply_in_order(uow: UnitOfWork, event: EventEnvelope) -> int:
    """Store `event`, then every held event that now follows; the last sequence stored."""
    current: EventEnvelope | None = event
    sequence = event.sequence
    while current is not None:
        await uow.activity.add(ActivityEntry.from_event(current))
        sequence = current.sequence
        current = await uow.positions.release(event.subject, sequence + 1)
    return sequence


class HistoryNotFound(Exception):
    """No such history in the caller's workspace: no such ticket, or not one in the state
    (live or deleted) the caller asked about."""


class HistoryForbidden(Exception):
    """The history exists but the caller's role may not read it."""


async def ticket_history(
    uow: UnitOfWork, workspace_id: UUID, ticket_id: str
) -> list[ActivityEntry]:
    async with uow:
        return await uow.activity.for_ticket(workspace_id, ticket_id)


async def read_history(
    uow: UnitOfWork,
    workspace_id: UUID,
    ticket_id: str,
    capabilities: Collection[Capability],
    *,
    of_deleted: bool,
    after_sequence: int,
    types: frozenset[str] | None,
    limit: int,
) -> list[ActivityEntry]:
    """A page of the history of a live ticket (`of_deleted=False`: the gateway has seen it
    at ticket-core) or of a deleted one, as the caller may see it."""
    async with uow:
        deleted = bool(await uow.activity.is_deleted(workspace_id, ticket_id))
        if deleted != of_deleted:
            state = "deleted" if of_deleted else "live"
            raise HistoryNotFound(f"No {state} ticket {ticket_id} in this workspace.")
        if not may_read_history(capabilities, deleted):
            raise HistoryForbidden(
                "Your role may not read a deleted ticket's history; it takes the "
                f"`{Capability.READ_DELETED_HISTORY}` capability (see GET /api/v1/members)."
            )
        return await uow.activity.for_ticket(
            workspace_id, ticket_id, after_sequence=after_sequence, types=types, limit=limit
        )


async def held_back(uow: UnitOfWork) -> list[dict[str, Any]]:
    async with uow:
        return await uow.positions.report()
