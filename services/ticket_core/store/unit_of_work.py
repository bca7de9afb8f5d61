"""One transaction per command: the new state and its events (in the outbox) commit together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from uuid import UUID, uuid4

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from shared.inbox import first_delivery
from shared.outbox import outbox_row

from ..domain.events import EventSourced
from ..domain.members import Member, Workspace
from ..domain.tickets import Ticket
from . import tables
from .repositories import (
    IdempotencyRepository,
    MemberRepository,
    TicketRepository,
    WorkspaceRepository,
)

SOURCE = "ticket-core"


@dataclass(frozen=True, slots=True)
class Causation:
    """Where a command came from, copied onto every event it causes."""

    correlation_id: str
    causation_id: str

    @classmethod
    def new(cls) -> Causation:
        request_id = str(uuid4())
        return cls(correlation_id=request_id, causation_id=request_id)


class UnitOfWork:
    workspaces: WorkspaceRepository
    members: MemberRepository
    tickets: TicketRepository
    idempotency: IdempotencyRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        causation: Causation,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._session_factory = session_factory
        self._causation = causation
        self._after_commit = after_commit

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._session_factory()
        await self._session.begin()
        self.workspaces = WorkspaceRepository(self._session)
        self.members = MemberRepository(self._session)
        self.tickets = TicketRepository(self._session)
        self.idempotency = IdempotencyRepository(self._session)
        self._replies: list[tuple[str, EventEnvelope]] = []
        return self

    async def first_delivery(self, consumer: str, message_id: UUID) -> bool:
        """Record a consumed message; False when this consumer already applied it."""
        return await first_delivery(self._session, tables.inbox, consumer, message_id)

    def reply(self, topic: str, envelope: EventEnvelope) -> None:
        """A message to publish with this transaction's commit (e.g. a command's result)."""
        self._replies.append((topic, envelope))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Undo what the block wrote if it raises, and keep the rest of the transaction."""
        async with self._session.begin_nested():
            yield

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

    async def commit(self) -> None:
        rows = [outbox_row(TICKET_EVENTS.name, event) for event in self._collect_events()]
        rows += [outbox_row(topic, envelope) for topic, envelope in self._replies]
        if rows:
            await self._session.execute(insert(tables.outbox), rows)
        await self._session.commit()
        if rows:
            self._after_commit()

    def _collect_events(self) -> list[EventEnvelope]:
        envelopes: list[EventEnvelope] = []
        aggregates: list[EventSourced] = [
            *self.tickets.seen,
            *self.members.seen,
            *self.workspaces.seen,
        ]
        for aggregate in aggregates:
            workspace_id, subject = _identity(aggregate)
            for recorded in aggregate.pending_events:
                envelopes.append(
                    EventEnvelope(
                        type=recorded.type,
                        source=SOURCE,
                        time=recorded.time,
                        workspace_id=workspace_id,
                        subject=subject,
                        sequence=recorded.sequence,
                        correlation_id=self._causation.correlation_id,
                        causation_id=self._causation.causation_id,
                        actor=recorded.actor,
                        data=recorded.data,
                    )
                )
            aggregate.pending_events.clear()
        return envelopes


def _identity(aggregate: EventSourced) -> tuple[UUID, str]:
    """The workspace and the subject (the Kafka key) of an aggregate's events."""
    if isinstance(aggregate, Workspace):
        return aggregate.id, str(aggregate.id)
    assert isinstance(aggregate, Ticket | Member)
    return aggregate.workspace_id, str(aggregate.id)


UnitOfWorkFactory = Callable[[Causation], UnitOfWork]
