"""Wires intake's parts together once per process (or per test)."""

from dataclasses import dataclass, field
from pathlib import Path

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.background import PeriodicTask
from shared.broker import create_broker
from shared.db import create_engine, create_read_engine, create_session_factory
from shared.outbox import OutboxRelay

from .domain.requests import RateLimits
from .domain.widget_access import BucketRule, RefusalTally, TokenBuckets, parse_trusted_proxies
from .entrypoints.consumer import register_consumers
from .entrypoints.scheduler import refusal_flusher, request_expirer
from .handlers import IntakeLimits, WidgetGuard
from .settings import IntakeSettings
from .store import tables
from .store.unit_of_work import UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "store" / "migrations"
SERVICE_NAME = "intake"


@dataclass
class Intake:
    settings: IntakeSettings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine
    read_session_factory: async_sessionmaker[AsyncSession]
    broker: KafkaBroker
    relay: OutboxRelay = field(init=False)
    limits: IntakeLimits = field(init=False)
    expirer: PeriodicTask = field(init=False)
    guard: WidgetGuard = field(init=False)
    refusal_flusher: PeriodicTask = field(init=False)

    def __post_init__(self) -> None:
        self.relay = OutboxRelay(
            self.engine,
            self.broker,
            tables.outbox,
            poll_interval_seconds=self.settings.outbox_poll_interval_seconds,
            lock_name=f"{SERVICE_NAME}-outbox",
        )
        self.limits = IntakeLimits(
            rate=RateLimits(
                window_seconds=self.settings.rate_window_seconds,
                per_assistant=self.settings.rate_limit_per_assistant,
                per_conversation=self.settings.rate_limit_per_conversation,
            ),
            request_timeout_seconds=self.settings.request_timeout_seconds,
            refusal_sample_size=self.settings.refusal_sample_size,
            refusal_retention_days=self.settings.refusal_retention_days,
        )
        window = float(self.settings.rate_window_seconds)
        tracked = self.settings.rate_limit_max_tracked_addresses
        self.guard = WidgetGuard(
            address_writes=TokenBuckets(
                BucketRule(self.settings.rate_limit_per_address, window), tracked
            ),
            address_reads=TokenBuckets(
                BucketRule(self.settings.rate_limit_reads_per_address, window), tracked
            ),
            assistant_writes=TokenBuckets(
                BucketRule(self.settings.rate_limit_per_assistant, window), tracked
            ),
            tally=RefusalTally(
                self.settings.refusal_sample_size, self.settings.refusal_samples_per_minute
            ),
            trusted_proxies=parse_trusted_proxies(self.settings.trusted_proxies),
        )
        self.refusal_flusher = refusal_flusher(
            self.unit_of_work,
            self.guard,
            self.limits,
            self.settings.refusal_flush_interval_seconds,
        )
        self.expirer = request_expirer(
            self.unit_of_work,
            self.settings.request_timeout_seconds,
            self.settings.timeout_check_interval_seconds,
        )
        register_consumers(
            self.broker,
            self.unit_of_work,
            self.limits,
            self.guard,
            group_id=self.settings.consumer_group,
        )

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, after_commit=self.relay.wake)

    def reader(self) -> UnitOfWork:
        """For queries (a widget polling its request): on SQLite they then never queue
        behind writers for the lock."""
        return UnitOfWork(self.read_session_factory)


def bootstrap(settings: IntakeSettings | None = None) -> Intake:
    settings = settings or IntakeSettings()
    engine = create_engine(settings.database_url)
    read_engine = create_read_engine(settings.database_url, engine)
    return Intake(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        read_engine=read_engine,
        read_session_factory=create_session_factory(read_engine),
        broker=create_broker(settings, client_id=SERVICE_NAME),
    )
