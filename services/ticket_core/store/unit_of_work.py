"""One transaction per command: the new state and its events (in the outbox) commit together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from shared.unit_of_work import SqlUnitOfWork

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

    @classmethod
    def of(cls, message: EventEnvelope) -> Causation:
        """What `message` causes: its correlation goes on, and it is the cause."""
        return cls(
            correlation_id=message.correlation_id or str(message.id), causation_id=str(message.id)
        )


class UnitOfWork(SqlUnitOfWork):
    """Also publishes, with the commit, every event the loaded aggregates recorded."""

    outbox_table = tables.outbox
    inbox_table = tables.inbox
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
        super().__init__(session_factory, after_commit)
        self._causation = causation

    @property
    def causation(self) -> Causation:
        return self._causation

    @property
    def session_factory(self) -> async_sessionmaker[AsyncSession]:
        return self._session_factory

    def caused_by(self, causation: Causation, *tickets: Ticket) -> None:
        """The events these tickets record in this transaction were caused by `causation`
        rather than by the unit of work's own (one command of a batch)."""
        for ticket in tickets:
            self._causation_of[str(ticket.id)] = causation

    def _open_repositories(self, session: AsyncSession) -> None:
        self._causation_of: dict[str, Causation] = {}  # by event subject
        self.workspaces = WorkspaceRepository(session)
        self.members = MemberRepository(session)
        self.tickets = TicketRepository(session)
        self.idempotency = IdempotencyRepository(session)

    def _collect_messages(self) -> list[tuple[str, EventEnvelope]]:
        return [(TICKET_EVENTS.name, event) for event in self._collect_events()]

    def _collect_events(self) -> list[EventEnvelope]:
        envelopes: list[EventEnvelope] = []
        aggregates: list[EventSourced] = [
            *self.tickets.seen,
            *self.members.seen,
            *self.workspaces.seen,
        ]
        for aggregate in aggregates:
            workspace_id, subject = _identity(aggregate)
            causation = self._causation_of.get(subject, self._causation)
            for recorded in aggregate.pending_events:
                envelopes.append(
                    EventEnvelope(
                        type=recorded.type,
                        source=SOURCE,
                        time=recorded.time,
                        workspace_id=workspace_id,
                        subject=subject,
                        sequence=recorded.sequence,
                        correlation_id=causation.correlation_id,
                        causation_id=causation.causation_id,
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
