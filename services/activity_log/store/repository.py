from dataclasses import fields
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import Actor, EventEnvelope

from ..domain.entries import ActivityEntry
from . import tables

DELETED = "ticket.deleted"


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, entry: ActivityEntry) -> None:
        await self._session.execute(insert(tables.activity_entries).values(_row_of(entry)))

    async def for_ticket(
        self,
        workspace_id: UUID,
        ticket_id: str,
        *,
        after_sequence: int = 0,
        types: frozenset[str] | None = None,
        limit: int | None = None,
    ) -> list[ActivityEntry]:
        entries = tables.activity_entries
        query = (
            select(entries)
            .where(
                entries.c.workspace_id == workspace_id,
                entries.c.ticket_id == ticket_id,
                entries.c.sequence > after_sequence,
            )
            .order_by(entries.c.sequence)
        )
        if types:
            query = query.where(entries.c.type.in_(types))
        if limit is not None:
            query = query.limit(limit)
        rows = (await self._session.execute(query)).mappings()
        return [_entry_of(row) for row in rows]

    async def is_deleted(self, workspace_id: UUID, ticket_id: str) -> bool | None:
        """None when the workspace has no history for this ticket at all."""
        entries = tables.activity_entries
        types = set(
            (
                await self._session.scalars(
                    select(entries.c.type)
                    .where(entries.c.workspace_id == workspace_id, entries.c.ticket_id == ticket_id)
                    .distinct()
                )
            ).all()
        )
        if not types:
            return None
        return DELETED in types


def _row_of(entry: ActivityEntry) -> dict[str, Any]:
    """The entry as its table's row: the actor is two columns."""
    row = {field.name: getattr(entry, field.name) for field in fields(entry)}
    actor = row.pop("actor")
    return row | {"actor_type": actor.type, "actor_id": actor.id}


def _entry_of(row: RowMapping) -> ActivityEntry:
    values = dict(row)
    actor = Actor(type=values.pop("actor_type"), id=values.pop("actor_id"))
    return ActivityEntry(**values, actor=actor)


class PositionRepository:
    """Where each subject's history stands, and the events held back for it."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def last_applied(self, subject: str) -> int | None:
        p = tables.positions
        last: int | None = await self._session.scalar(
            select(p.c.last_sequence).where(p.c.subject == subject)
        )
        return last

    async def advance(self, subject: str, workspace_id: UUID, sequence: int, *, new: bool) -> None:
        p = tables.positions
        if new:
            await self._session.execute(
                insert(p).values(subject=subject, workspace_id=workspace_id, last_sequence=sequence)
            )
        else:
            await self._session.execute(
                update(p).where(p.c.subject == subject).values(last_sequence=sequence)
            )

    async def hold(self, event: EventEnvelope, reason: str, now: datetime) -> None:
        await self._session.execute(
            insert(tables.held_events).values(
                event_id=event.id,
                subject=event.subject,
                sequence=event.sequence,
                reason=reason,
                payload=event.model_dump(mode="json"),
                received_at=now,
            )
        )

    async def release(self, subject: str, sequence: int) -> EventEnvelope | None:
        """Take the held event with this sequence out of the waiting room, if it is there."""
        h = tables.held_events
        row = (
            (
                await self._session.execute(
                    select(h.c.event_id, h.c.payload).where(
                        h.c.subject == subject, h.c.sequence == sequence, h.c.reason == "gap"
                    )
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        await self._session.execute(delete(h).where(h.c.event_id == row["event_id"]))
        return EventEnvelope.model_validate(row["payload"])

    async def report(self) -> list[dict[str, Any]]:
        """Per subject: how many events wait behind a gap or conflict, from which sequence."""
        h, p = tables.held_events, tables.positions
        rows = await self._session.execute(
            select(
                h.c.subject,
                h.c.reason,
                func.count().label("held"),
                func.min(h.c.sequence).label("first_held"),
                func.min(h.c.received_at).label("since"),
                p.c.last_sequence,
            )
            .join(p, p.c.subject == h.c.subject, isouter=True)
            .group_by(h.c.subject, h.c.reason, p.c.last_sequence)
            .order_by(func.min(h.c.received_at))
        )
        return [dict(row) for row in rows.mappings()]
