"""Wires activity-log's parts together once per process (or per test)."""

from dataclasses import dataclass
from pathlib import Path

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.broker import create_broker
from shared.db import create_engine, create_read_engine, create_session_factory

from .entrypoints.consumer import register_consumers
from .settings import ActivityLogSettings
from .store.unit_of_work import UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "store" / "migrations"
SERVICE_NAME = "activity-log"


@dataclass
class ActivityLog:
    settings: ActivityLogSettings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine
    read_session_factory: async_sessionmaker[AsyncSession]
    broker: KafkaBroker

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def reader(self) -> UnitOfWork:
        """For queries: on SQLite they then never queue behind the consumer's writes."""
        return UnitOfWork(self.read_session_factory)


def bootstrap(settings: ActivityLogSettings | None = None) -> ActivityLog:
    settings = settings or ActivityLogSettings()
    engine = create_engine(settings.database_url)
    read_engine = create_read_engine(settings.database_url, engine)
    service = ActivityLog(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        read_engine=read_engine,
        read_session_factory=create_session_factory(read_engine),
        broker=create_broker(settings, client_id=SERVICE_NAME),
    )
    register_consumers(service.broker, service.unit_of_work, group_id=settings.consumer_group)
    return service
