from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import Actor

from ..domain.entries import ActivityEntry
from . import tables


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, entry: ActivityEntry) -> None:
        await self._session.execute(
            insert(tables.activity_entries).values(
                event_id=entry.event_id,
                workspace_id=entry.workspace_id,
                ticket_id=entry.ticket_id,
                sequence=entry.sequence,
                type=entry.type,
                schema_version=entry.schema_version,
                actor_type=entry.actor.type,
                actor_id=entry.actor.id,
                time=entry.time,
                changes=entry.changes,
                data=entry.data,
            )
        )

    async def for_ticket(self, workspace_id: UUID, ticket_id: str) -> list[ActivityEntry]:
        entries = tables.activity_entries
        rows = (
            await self._session.execute(
                select(entries)
                .where(entries.c.workspace_id == workspace_id, entries.c.ticket_id == ticket_id)
                .order_by(entries.c.sequence)
            )
        ).mappings()
        return [
            ActivityEntry(
                event_id=row["event_id"],
                workspace_id=row["workspace_id"],
                ticket_id=row["ticket_id"],
                sequence=row["sequence"],
                type=row["type"],
                schema_version=row["schema_version"],
                actor=Actor(type=row["actor_type"], id=row["actor_id"]),
                time=row["time"],
                changes=row["changes"],
                data=row["data"],
            )
            for row in rows
        ]
