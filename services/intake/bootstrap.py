"""Wires intake's parts together once per process (or per test)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from shared.background import PeriodicTask
from shared.outbox import OutboxRelay
from shared.service import ServiceParts

from .domain.requests import RateLimits
from .domain.widget_access import BucketRule, RefusalTally, TokenBuckets, parse_trusted_proxies
from .entrypoints.consumer import register_consumers
from .entrypoints.scheduler import refusal_flusher, request_expirer
from .handlers import IntakeLimits, RequestGroups, WidgetGuard
from .settings import IntakeSettings
from .store import tables
from .store.unit_of_work import UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "store" / "migrations"
SERVICE_NAME = "intake"


@dataclass(kw_only=True)
class Intake(ServiceParts[IntakeSettings]):
    name: ClassVar[str] = SERVICE_NAME
    relay: OutboxRelay = field(init=False)
    limits: IntakeLimits = field(init=False)
    expirer: PeriodicTask = field(init=False)
    guard: WidgetGuard = field(init=False)
    request_groups: RequestGroups = field(init=False)
    refusal_flusher: PeriodicTask = field(init=False)
    inbox_pruner: PeriodicTask = field(init=False)

    def __post_init__(self) -> None:
        self.relay = self.outbox_relay(tables.outbox)
        self.inbox_pruner = self.inbox_pruner_for(tables.inbox)
        self.limits = _limits(self.settings)
        self.guard = _guard(self.settings)
        self.request_groups = RequestGroups(self.unit_of_work, self.limits, self.guard)
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
        return UnitOfWork(self.read_session_factory)


def _limits(settings: IntakeSettings) -> IntakeLimits:
    return IntakeLimits(
        rate=RateLimits(
            window_seconds=settings.rate_window_seconds,
            per_assistant=settings.rate_limit_per_assistant,
            per_conversation=settings.rate_limit_per_conversation,
        ),
        request_timeout_seconds=settings.request_timeout_seconds,
        refusal_sample_size=settings.refusal_sample_size,
        refusal_retention_days=settings.refusal_retention_days,
    )


def _guard(settings: IntakeSettings) -> WidgetGuard:
    """The widget listener's token buckets (per address, per assistant) and refusal tally."""
    window = float(settings.rate_window_seconds)

    def buckets(per_window: int) -> TokenBuckets:
        return TokenBuckets(
            BucketRule(per_window, window), settings.rate_limit_max_tracked_addresses
        )

    return WidgetGuard(
        address_writes=buckets(settings.rate_limit_per_address),
        address_reads=buckets(settings.rate_limit_reads_per_address),
        assistant_writes=buckets(settings.rate_limit_per_assistant),
        tally=RefusalTally(settings.refusal_sample_size, settings.refusal_samples_per_minute),
        trusted_proxies=parse_trusted_proxies(settings.trusted_proxies),
    )


def bootstrap(settings: IntakeSettings | None = None) -> Intake:
    return Intake.from_settings(settings or IntakeSettings())
