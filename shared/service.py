"""What every service wires the same way, once: a database engine for writes and one for
queries, the Kafka broker, and for a service that publishes, its outbox relay.

A service's bootstrap subclasses `ServiceParts`, names itself, and adds only what is its own
(its subscribers, its periodic tasks, its units of work).
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Generic, Self, TypeVar

from faststream.kafka import KafkaBroker
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.background import BrokerConnection, PeriodicTask
from shared.broker import create_broker
from shared.db import create_engine, create_read_engine, create_session_factory
from shared.inbox import inbox_pruner
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(kw_only=True)
class ServiceParts(Generic[SettingsT]):
    name: ClassVar[str]
    """The service's name: its Kafka client id, its outbox lock, its log lines."""

    settings: SettingsT
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine
    """For queries: on SQLite they then never queue behind the writers for the lock."""
    read_session_factory: async_sessionmaker[AsyncSession]
    broker: KafkaBroker
    broker_connection: BrokerConnection
    """Starts `broker` in the background, so the service serves while it is unreachable."""

    @classmethod
    def from_settings(cls, settings: SettingsT) -> Self:
        engine = create_engine(settings.database_url)
        read_engine = create_read_engine(settings.database_url, engine)
        broker = create_broker(settings, client_id=cls.name)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            read_engine=read_engine,
            read_session_factory=create_session_factory(read_engine),
            broker=broker,
            broker_connection=BrokerConnection(broker, settings),
        )

    def inbox_pruner_for(self, inbox: Table) -> PeriodicTask:
        """Forgets the ids in `inbox` older than the de-duplication horizon, hourly."""
        return inbox_pruner(
            self.session_factory, inbox, timedelta(hours=self.settings.inbox_retention_hours)
        )

    def outbox_relay(self, outbox: Table) -> OutboxRelay:
        """The relay that publishes what this service's transactions wrote to `outbox`."""
        return OutboxRelay(
            self.engine,
            self.broker,
            outbox,
            poll_interval_seconds=self.settings.outbox_poll_interval_seconds,
            retention_seconds=self.settings.outbox_retention_seconds,
            lock_name=f"{self.name}-outbox",
        )
