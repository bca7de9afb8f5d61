"""The unit of work every service uses: one session and transaction per command or message,
outgoing messages written to the outbox in the same commit, and the inbox check.

A service subclasses it, names its outbox and inbox tables, and builds its repositories in
`_open_repositories`; ticket-core also adds the events its aggregates recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import ClassVar, Self
from uuid import UUID

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.envelope import EventEnvelope
from shared.db import writer_turn
from shared.inbox import delivered, first_deliveries, first_delivery, was_delivered
from shared.outbox import outbox_row


class SqlUnitOfWork:
    outbox_table: ClassVar[Table | None] = None
    inbox_table: ClassVar[Table | None] = None

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._session_factory = session_factory
        self._after_commit = after_commit

    async def __aenter__(self) -> Self:
        self._turn: AbstractAsyncContextManager[None] = writer_turn(
            self._session_factory.kw["bind"]
        )
        await self._turn.__aenter__()
        try:
            self._session = self._session_factory()
            await self._session.begin()
        except BaseException:
            await self._turn.__aexit__(None, None, None)
            raise
        self._outgoing: list[tuple[str, EventEnvelope]] = []
        self._open_repositories(self._session)
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
            try:
                await self._session.close()
            finally:
                await self._turn.__aexit__(None, None, None)

    def _open_repositories(self, session: AsyncSession) -> None:
        """Build the service's repositories on this transaction's session."""

    def _collect_messages(self) -> list[tuple[str, EventEnvelope]]:
        """Messages to publish with this commit, besides those given to `send`."""
        return []

    def send(self, topic: str, message: EventEnvelope) -> None:
        """Publish `message` on `topic` if, and only if, this transaction commits."""
        self._outgoing.append((topic, message))

    async def first_delivery(self, consumer: str, message_id: UUID | str) -> bool:
        """Record a consumed message; False when this consumer already applied it."""
        assert self.inbox_table is not None, "this service keeps no inbox"
        return await first_delivery(self._session, self.inbox_table, consumer, message_id)

    async def first_deliveries(self, consumer: str, message_ids: Iterable[UUID | str]) -> set[str]:
        """Record a batch of consumed messages; the ids this consumer had not applied yet."""
        assert self.inbox_table is not None, "this service keeps no inbox"
        return await first_deliveries(self._session, self.inbox_table, consumer, message_ids)

    async def delivered(self, consumer: str, message_ids: Iterable[UUID | str]) -> set[str]:
        """Which of the messages this consumer has applied (read only)."""
        assert self.inbox_table is not None, "this service keeps no inbox"
        return await delivered(self._session, self.inbox_table, consumer, message_ids)

    async def was_delivered(self, consumer: str, message_id: UUID | str) -> bool:
        """Whether this consumer has applied the message (read only)."""
        assert self.inbox_table is not None, "this service keeps no inbox"
        return await was_delivered(self._session, self.inbox_table, consumer, message_id)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Undo what the block wrote if it raises, and keep the rest of the transaction."""
        async with self._session.begin_nested():
            yield

    async def commit(self) -> None:
        messages = [*self._collect_messages(), *self._outgoing]
        if messages:
            assert self.outbox_table is not None, "this service publishes nothing"
            await self._session.execute(
                insert(self.outbox_table), [outbox_row(t, m) for t, m in messages]
            )
        await self._session.commit()
        if messages:
            self._after_commit()
