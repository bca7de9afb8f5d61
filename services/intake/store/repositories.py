"""intake's reads and writes, in plain SQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.widget import ConversationMessage, RequestStatus

from ..domain.requests import AssistantSettings, RecentRequests
from . import tables


class AssistantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, assistant_id: str) -> AssistantSettings | None:
        a = tables.assistants
        row = (
            (await self._session.execute(select(a).where(a.c.assistant_id == assistant_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return AssistantSettings(
            assistant_id=row["assistant_id"],
            workspace_id=row["workspace_id"],
            ticket_creation_enabled=row["ticket_creation_enabled"],
            require_contact_info=row["require_contact_info"],
        )

    async def save(
        self,
        settings: AssistantSettings,
        *,
        existed: bool,
        changed_by: str,
        changes: dict[str, Any],
        now: datetime,
    ) -> int:
        """Store the settings and their change; returns the change's sequence number."""
        a = tables.assistants
        values = {
            "workspace_id": settings.workspace_id,
            "ticket_creation_enabled": settings.ticket_creation_enabled,
            "require_contact_info": settings.require_contact_info,
            "updated_at": now,
        }
        if existed:
            sequence = await self._session.scalar(
                update(a)
                .where(a.c.assistant_id == settings.assistant_id)
                .values(**values, last_sequence=a.c.last_sequence + 1)
                .returning(a.c.last_sequence)
            )
        else:
            await self._session.execute(
                insert(a).values(assistant_id=settings.assistant_id, last_sequence=1, **values)
            )
            sequence = 1
        await self._session.execute(
            insert(tables.assistant_settings_changes).values(
                assistant_id=settings.assistant_id,
                changed_at=now,
                changed_by=changed_by,
                changes=changes,
            )
        )
        return int(sequence or 1)

    async def history(self, assistant_id: str) -> list[RowMapping]:
        c = tables.assistant_settings_changes
        return list(
            (
                await self._session.execute(
                    select(c.c.changed_at, c.c.changed_by, c.c.changes)
                    .where(c.c.assistant_id == assistant_id)
                    .order_by(c.c.id.desc())
                )
            ).mappings()
        )


class RequestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, request_id: str) -> RowMapping | None:
        r = tables.ticket_requests
        return (
            (await self._session.execute(select(r).where(r.c.request_id == request_id)))
            .mappings()
            .first()
        )

    async def by_command(self, command_id: UUID) -> RowMapping | None:
        r = tables.ticket_requests
        return (
            (await self._session.execute(select(r).where(r.c.command_id == command_id)))
            .mappings()
            .first()
        )

    async def add(self, **values: Any) -> None:
        await self._session.execute(insert(tables.ticket_requests).values(**values))

    async def decide(self, request_id: str, **values: Any) -> int:
        """Record an outcome; returns the request's new event sequence."""
        r = tables.ticket_requests
        sequence = await self._session.scalar(
            update(r)
            .where(r.c.request_id == request_id)
            .values(**values, last_sequence=r.c.last_sequence + 1)
            .returning(r.c.last_sequence)
        )
        return int(sequence or 1)

    async def recent(
        self, assistant_id: str, conversation_id: str, now: datetime, window_seconds: int
    ) -> RecentRequests:
        r = tables.ticket_requests
        since = now - timedelta(seconds=window_seconds)
        for_assistant = await self._session.scalar(
            select(func.count()).where(r.c.assistant_id == assistant_id, r.c.received_at > since)
        )
        for_conversation = await self._session.scalar(
            select(func.count()).where(
                r.c.assistant_id == assistant_id,
                r.c.conversation_id == conversation_id,
                r.c.received_at > since,
            )
        )
        return RecentRequests(int(for_assistant or 0), int(for_conversation or 0))

    async def pending_before(self, moment: datetime) -> list[RowMapping]:
        r = tables.ticket_requests
        return list(
            (
                await self._session.execute(
                    select(r).where(
                        r.c.status == RequestStatus.PENDING.value, r.c.received_at < moment
                    )
                )
            ).mappings()
        )

    async def for_assistant(
        self, workspace_id: UUID, assistant_id: str, status: RequestStatus | None, limit: int
    ) -> list[RowMapping]:
        """The newest requests of this workspace's assistant (requests nobody's assistant
        took, workspace-less, are never among them)."""
        r = tables.ticket_requests
        query = select(r).where(r.c.workspace_id == workspace_id, r.c.assistant_id == assistant_id)
        if status is not None:
            query = query.where(r.c.status == status.value)
        query = query.order_by(r.c.received_at.desc()).limit(limit)
        return list((await self._session.execute(query)).mappings())


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, assistant_id: str, conversation_id: str) -> RowMapping | None:
        c = tables.conversations
        return (
            (
                await self._session.execute(
                    select(c).where(
                        c.c.assistant_id == assistant_id, c.c.conversation_id == conversation_id
                    )
                )
            )
            .mappings()
            .first()
        )

    async def find(self, workspace_id: UUID, conversation_id: str) -> RowMapping | None:
        c = tables.conversations
        return (
            (
                await self._session.execute(
                    select(c).where(
                        c.c.workspace_id == workspace_id, c.c.conversation_id == conversation_id
                    )
                )
            )
            .mappings()
            .first()
        )

    async def add(self, assistant_id: str, conversation_id: str, workspace_id: UUID) -> None:
        await self._session.execute(
            insert(tables.conversations).values(
                assistant_id=assistant_id,
                conversation_id=conversation_id,
                workspace_id=workspace_id,
            )
        )

    async def link_ticket(self, assistant_id: str, conversation_id: str, ticket_id: UUID) -> None:
        c = tables.conversations
        await self._session.execute(
            update(c)
            .where(c.c.assistant_id == assistant_id, c.c.conversation_id == conversation_id)
            .values(ticket_id=ticket_id)
        )

    async def next_sequence(self, assistant_id: str, conversation_id: str) -> int:
        c = tables.conversations
        sequence = await self._session.scalar(
            update(c)
            .where(c.c.assistant_id == assistant_id, c.c.conversation_id == conversation_id)
            .values(last_sequence=c.c.last_sequence + 1)
            .returning(c.c.last_sequence)
        )
        return int(sequence or 1)

    async def messages(self, assistant_id: str, conversation_id: str) -> list[ConversationMessage]:
        m = tables.conversation_messages
        rows = await self._session.execute(
            select(m.c.role, m.c.text, m.c.sent_at)
            .where(m.c.assistant_id == assistant_id, m.c.conversation_id == conversation_id)
            .order_by(m.c.sent_at, m.c.id)
        )
        return [
            ConversationMessage(role=role, text=text, sent_at=sent_at)
            for role, text, sent_at in rows
        ]

    async def append(
        self, assistant_id: str, conversation_id: str, messages: list[ConversationMessage]
    ) -> None:
        if messages:
            await self._session.execute(
                insert(tables.conversation_messages),
                [
                    {
                        "assistant_id": assistant_id,
                        "conversation_id": conversation_id,
                        "role": message.role.value,
                        "text": message.text,
                        "sent_at": message.sent_at,
                    }
                    for message in messages
                ],
            )
