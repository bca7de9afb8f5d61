"""Wires ticket-core's parts together once per process (or per test)."""

from dataclasses import dataclass, field
from pathlib import Path

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.background import PeriodicTask
from shared.broker import create_broker
from shared.db import create_engine, create_read_engine, create_session_factory
from shared.outbox import OutboxRelay

from .entrypoints.consumer import register_consumers
from .entrypoints.scheduler import auto_closer
from .settings import TicketCoreSettings
from .store import tables
from .store.unit_of_work import Causation, UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "store" / "migrations"
SERVICE_NAME = "ticket-core"


@dataclass
class TicketCore:
    settings: TicketCoreSettings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine
    read_session_factory: async_sessionmaker[AsyncSession]
    broker: KafkaBroker
    relay: OutboxRelay = field(init=False)
    auto_closer: PeriodicTask = field(init=False)

    def __post_init__(self) -> None:
        self.relay = OutboxRelay(
            self.engine,
            self.broker,
            tables.outbox,
            poll_interval_seconds=self.settings.outbox_poll_interval_seconds,
            lock_name=f"{SERVICE_NAME}-outbox",
        )
        self.auto_closer = auto_closer(self.unit_of_work, self.settings.auto_close_interval_seconds)
        register_consumers(self.broker, self.unit_of_work, group_id=self.settings.consumer_group)

    def unit_of_work(self, causation: Causation | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.session_factory, causation or Causation.new(), after_commit=self.relay.wake
        )

    def reader(self) -> UnitOfWork:
        """For queries: on SQLite they then never queue behind writers for the lock."""
        return UnitOfWork(self.read_session_factory, Causation.new())


def bootstrap(settings: TicketCoreSettings | None = None) -> TicketCore:
    settings = settings or TicketCoreSettings()
    engine = create_engine(settings.database_url)
    read_engine = create_read_engine(settings.database_url, engine)
    return TicketCore(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        read_engine=read_engine,
        read_session_factory=create_session_factory(read_engine),
        broker=create_broker(settings, client_id=SERVICE_NAME),
    )
