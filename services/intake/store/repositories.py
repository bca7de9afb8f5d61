"""intake's reads and writes, in plain SQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.widget import ConversationMessage, RequestStatus

from ..domain.requests import AssistantSettings, RecentRequests
from ..domain.widget_access import RefusalBatch
from . import tables


def _settings(row: RowMapping) -> AssistantSettings:
    return AssistantSettings(
        assistant_id=row["assistant_id"],
        workspace_id=row["workspace_id"],
        ticket_creation_enabled=row["ticket_creation_enabled"],
        require_contact_info=row["require_contact_info"],
        widget_key=row["widget_key"],
        previous_widget_key=row["previous_widget_key"],
        allowed_origins=tuple(row["allowed_origins"] or ()),
        identity_verification=row["identity_verification"],
        identity_secret=row["identity_secret"],
    )


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
        return None if row is None else _settings(row)

    async def by_widget_key(self, widget_key: str) -> AssistantSettings | None:
        """The assistant whose current or replaced key this is (the caller compares)."""
        a = tables.assistants
        row = (
            (
                await self._session.execute(
                    select(a).where(
                        or_(a.c.widget_key == widget_key, a.c.previous_widget_key == widget_key)
                    )
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _settings(row)

    async def replace_widget_key(self, assistant_id: str, new_key: str) -> None:
        a = tables.assistants
        await self._session.execute(
            update(a)
            .where(a.c.assistant_id == assistant_id)
            .values(previous_widget_key=a.c.widget_key, widget_key=new_key)
        )

    async def set_identity_secret(self, assistant_id: str, secret: str) -> None:
        a = tables.assistants
        await self._session.execute(
            update(a).where(a.c.assistant_id == assistant_id).values(identity_secret=secret)
        )

    async def origin_listed(self, origin: str) -> bool:
        o = tables.assistant_origins
        return bool(await self._session.scalar(select(exists().where(o.c.origin == origin))))

    async def some_open(self) -> bool:
        """Whether some assistant lists no origins (accepts calls from any)."""
        a, o = tables.assistants, tables.assistant_origins
        listed = select(o.c.assistant_id).where(o.c.assistant_id == a.c.assistant_id).exists()
        first_open = select(a.c.assistant_id).where(~listed).limit(1)
        return await self._session.scalar(first_open) is not None

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
            "allowed_origins": list(settings.allowed_origins),
            "identity_verification": settings.identity_verification,
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
                insert(a).values(
                    assistant_id=settings.assistant_id,
                    last_sequence=1,
                    widget_key=settings.widget_key,
                    **values,
                )
            )
            sequence = 1
        if "allowed_origins" in changes:
            o = tables.assistant_origins
            await self._session.execute(delete(o).where(o.c.assistant_id == settings.assistant_id))
            if settings.allowed_origins:
                await self._session.execute(
                    insert(o),
                    [
                        {"assistant_id": settings.assistant_id, "origin": origin}
                        for origin in settings.allowed_origins
                    ],
                )
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


class RefusalRepository:
    """Refused widget calls: counts per (assistant, reason, minute), and samples."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def write(self, batch: RefusalBatch, sample_size: int) -> None:
        c = tables.refusal_counts
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        for (assistant_id, reason, minute), count in sorted(batch.counts.items()):
            upsert = dialect.insert(c).values(
                assistant_id=assistant_id, reason=reason, minute=minute, count=count
            )
            await self._session.execute(
                upsert.on_conflict_do_update(
                    index_elements=[c.c.assistant_id, c.c.reason, c.c.minute],
                    set_={"count": c.c.count + upsert.excluded.count},
                )
            )
        if not batch.samples:
            return
        s = tables.refusal_samples
        await self._session.execute(
            insert(s),
            [
                {
                    "assistant_id": sample.assistant_id,
                    "request_id": sample.request_id,
                    "conversation_id": sample.conversation_id,
                    "reason": sample.reason.value,
                    "detail": sample.detail,
                    "received_at": sample.received_at,
                }
                for sample in batch.samples
            ],
        )
        for assistant_id in sorted({sample.assistant_id for sample in batch.samples}):
            oldest_kept = await self._session.scalar(
                select(s.c.id)
                .where(s.c.assistant_id == assistant_id)
                .order_by(s.c.id.desc())
                .offset(sample_size - 1)
                .limit(1)
            )
            if oldest_kept is not None:
                await self._session.execute(
                    delete(s).where(s.c.assistant_id == assistant_id, s.c.id < oldest_kept)
                )

    async def prune(self, before: datetime) -> None:
        c = tables.refusal_counts
        await self._session.execute(delete(c).where(c.c.minute < before))

    async def counts(self, assistant_id: str, since: datetime) -> list[RowMapping]:
        c = tables.refusal_counts
        return list(
            (
                await self._session.execute(
                    select(c.c.minute, c.c.reason, c.c.count)
                    .where(c.c.assistant_id == assistant_id, c.c.minute >= since)
                    .order_by(c.c.minute.desc(), c.c.reason)
                )
            ).mappings()
        )

    async def samples(self, assistant_id: str, limit: int) -> list[RowMapping]:
        s = tables.refusal_samples
        return list(
            (
                await self._session.execute(
                    select(s)
                    .where(s.c.assistant_id == assistant_id)
                    .order_by(s.c.id.desc())
                    .limit(limit)
                )
            ).mappings()
        )

    async def sample_of(self, assistant_id: str, request_id: str) -> RowMapping | None:
        s = tables.refusal_samples
        return (
            (
                await self._session.execute(
                    select(s)
                    .where(s.c.assistant_id == assistant_id, s.c.request_id == request_id)
                    .order_by(s.c.id.desc())
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )


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

    async def message_count(self, assistant_id: str, conversation_id: str) -> int:
        m = tables.conversation_messages
        count = await self._session.scalar(
            select(func.count()).where(
                m.c.assistant_id == assistant_id, m.c.conversation_id == conversation_id
            )
        )
        return int(count or 0)

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
