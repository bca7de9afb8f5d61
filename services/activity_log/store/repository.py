from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import Actor, EventEnvelope
from shared.db import insert_rows

from ..domain.entries import ActivityEntry
from . import tables

DELETED = "ticket.deleted"


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, entry: ActivityEntry) -> None:
        await self.add_all([entry])

    async def add_all(self, entries: Sequence[ActivityEntry]) -> None:
        """One bulk INSERT (the driver's executemany) for the lot."""
        await insert_rows(
            self._session, tables.activity_entries, [_row_of(entry) for entry in entries]
        )

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
    """The entry as its table's row: the actor is two columns. Spelled out, not through
    `dataclasses.fields`, which took more time per row than the rest of the batch's Python."""
    return {
        "event_id": entry.event_id,
        "workspace_id": entry.workspace_id,
        "ticket_id": entry.ticket_id,
        "sequence": entry.sequence,
        "type": entry.type,
        "schema_version": entry.schema_version,
        "actor_type": entry.actor.type,
        "actor_id": entry.actor.id,
        "time": entry.time,
        "changes": entry.changes,
        "data": entry.data,
    }


def _entry_of(row: RowMapping) -> ActivityEntry:
    values = dict(row)
    actor = Actor(type=values.pop("actor_type"), id=values.pop("actor_id"))
    return ActivityEntry(**values, actor=actor)


class PositionRepository:
    """Where each subject's history stands, and the events held back for it."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def last_applied_of(self, subjects: Collection[str]) -> dict[str, int]:
        """Each subject's last applied sequence; a subject with none is missing."""
        p = tables.positions
        rows = await self._session.execute(
            select(p.c.subject, p.c.last_sequence).where(p.c.subject.in_(subjects))
        )
        return {subject: last for subject, last in rows}

    async def advance_all(
        self, moved: Sequence[tuple[str, UUID, int]], *, existing: Collection[str]
    ) -> None:
        """Set each (subject, workspace, last sequence): an UPDATE (executemany) for the
        subjects in `existing`, one bulk INSERT for the others."""
        p = tables.positions
        updates = [
            {"b_subject": subject, "b_last": last}
            for subject, _, last in moved
            if subject in existing
        ]
        inserts = [
            {"subject": subject, "workspace_id": workspace_id, "last_sequence": last}
            for subject, workspace_id, last in moved
            if subject not in existing
        ]
        await insert_rows(self._session, p, inserts)
        if updates:
            statement = (
                update(p)
                .where(p.c.subject == bindparam("b_subject"))
                .values(last_sequence=bindparam("b_last"))
            )
            await self._session.execute(
                statement, updates, execution_options={"synchronize_session": False}
            )

    async def waiting_behind_gaps(self, subjects: Collection[str]) -> list[EventEnvelope]:
        """The events held behind a gap for these subjects, oldest first."""
        h = tables.held_events
        rows = await self._session.execute(
            select(h.c.payload)
            .where(h.c.subject.in_(subjects), h.c.reason == "gap")
            .order_by(h.c.received_at)
        )
        return [EventEnvelope.model_validate(payload) for (payload,) in rows]

    async def hold_all(self, held: Sequence[tuple[EventEnvelope, str]], now: datetime) -> None:
        if held:
            await self._session.execute(
                insert(tables.held_events),
                [
                    {
                        "event_id": event.id,
                        "subject": event.subject,
                        "sequence": event.sequence,
                        "reason": reason,
                        "payload": event.model_dump(mode="json"),
                        "received_at": now,
                    }
                    for event, reason in held
                ],
            )

    async def forget_held(self, event_ids: Collection[UUID]) -> None:
        """Take released events out of the waiting room."""
        if event_ids:
            h = tables.held_events
            await self._session.execute(delete(h).where(h.c.event_id.in_(event_ids)))

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
