"""activity-log's use cases: record an event in its subject's order, read a history, report
what is held back."""

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy.exc import IntegrityError

from shared.contracts.api import Capability
from shared.contracts.envelope import EventEnvelope

from .domain.entries import ActivityEntry, may_read_history
from .domain.ordering import Verdict, order
from .store.unit_of_work import UnitOfWork

CONSUMER = "activity-log"

log = structlog.get_logger(__name__)


async def record_event(uow: UnitOfWork, event: EventEnvelope) -> bool:
    """Apply the event once and in order; False when it was a redelivery."""
    return await record_events(uow, [event]) == 1


async def record_events(uow: UnitOfWork, events: Sequence[EventEnvelope]) -> int:
    """Apply a batch in one transaction, each subject's events in the order given (the order
    of their partition); returns how many were new, the others being redeliveries.

    After a gap an event is held, and applied (with any held ones after it) as soon as the
    missing one arrives, in this batch or a later one; an event whose sequence is already
    taken is held as a conflict. Statements per batch, not per event: one inbox look-up and
    one insert, one position look-up, one held-event look-up, and one bulk write of each of
    entries, positions and held events that changed.
    """
    try:
        async with uow:
            recorded = await _record(uow, events)
            await uow.commit()
    except IntegrityError:
        # Another replica stored the same events between our check and our commit, which
        # its inbox rows show; any other failed constraint is no duplicate and is raised
        # (the consumer then applies the batch one event at a time).
        async with uow:
            if await uow.delivered(CONSUMER, [e.id for e in events]) == {str(e.id) for e in events}:
                return 0
        raise
    return recorded


async def _record(uow: UnitOfWork, events: Sequence[EventEnvelope]) -> int:
    fresh = await uow.first_deliveries(CONSUMER, [event.id for event in events])
    by_subject: dict[str, list[EventEnvelope]] = {}
    for event in events:
        if str(event.id) in fresh:
            fresh.discard(str(event.id))  # a second copy within the batch is a redelivery
            by_subject.setdefault(event.subject, []).append(event)
    if not by_subject:
        return 0
    last_applied = await uow.positions.last_applied_of(by_subject)
    waiting: dict[str, list[EventEnvelope]] = {}
    for held in await uow.positions.waiting_behind_gaps(by_subject):
        waiting.setdefault(held.subject, []).append(held)
    entries: list[ActivityEntry] = []
    moved: list[tuple[str, UUID, int]] = []
    to_hold: list[tuple[EventEnvelope, str]] = []
    released: list[UUID] = []
    for subject, arrived in by_subject.items():
        last = last_applied.get(subject, 0)
        outcome = order(last, waiting.get(subject, []), arrived)
        entries.extend(ActivityEntry.from_event(event) for event in outcome.applied)
        released.extend(event.id for event in outcome.released)
        if outcome.last_applied != last:
            moved.append((subject, arrived[0].workspace_id, outcome.last_applied))
        for event, verdict in outcome.held:
            log.warning(
                "event_held",
                reason=verdict.value,
                subject=subject,
                sequence=event.sequence,
                last_applied=last,
            )
            to_hold.append((event, "gap" if verdict is Verdict.HOLD else "conflict"))
    await uow.activity.add_all(entries)
    await uow.positions.advance_all(moved, existing=last_applied.keys())
    await uow.positions.hold_all(to_hold, datetime.now(UTC))
    await uow.positions.forget_held(released)
    return sum(len(arrived) for arrived in by_subject.values())


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
