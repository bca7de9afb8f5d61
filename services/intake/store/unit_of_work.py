"""One transaction per request or message: intake's state and the messages it sends (in the
outbox) commit together."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.envelope import EventEnvelope
from shared.inbox import first_delivery
from shared.outbox import outbox_row

from . import tables
from .repositories import AssistantRepository, ConversationRepository, RequestRepository


class UnitOfWork:
    assistants: AssistantRepository
    requests: RequestRepository
    conversations: ConversationRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._session_factory = session_factory
        self._after_commit = after_commit

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._session_factory()
        await self._session.begin()
        self.assistants = AssistantRepository(self._session)
        self.requests = RequestRepository(self._session)
        self.conversations = ConversationRepository(self._session)
        self._outgoing: list[tuple[str, EventEnvelope]] = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._session.in_transaction():
                await self._session.rollback()
        finally:
            await self._session.close()

    def send(self, topic: str, message: EventEnvelope) -> None:
        """Publish `message` on `topic` if, and only if, this transaction commits."""
        self._outgoing.append((topic, message))

    async def first_delivery(self, consumer: str, message_id: UUID) -> bool:
        return await first_delivery(self._session, tables.inbox, consumer, message_id)

    async def commit(self) -> None:
        rows = [outbox_row(topic, message) for topic, message in self._outgoing]
        if rows:
            await self._session.execute(insert(tables.outbox), rows)
        await self._session.commit()
        if rows:
            self._after_commit()
