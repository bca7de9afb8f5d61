"""Wires ticket-core's parts together once per process (or per test)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from shared.background import PeriodicTask
from shared.outbox import OutboxRelay
from shared.service import ServiceParts

from .entrypoints.consumer import register_consumers
from .entrypoints.scheduler import auto_closer
from .settings import TicketCoreSettings
from .store import tables
from .store.unit_of_work import Causation, UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "store" / "migrations"
SERVICE_NAME = "ticket-core"


@dataclass(kw_only=True)
class TicketCore(ServiceParts[TicketCoreSettings]):
    name: ClassVar[str] = SERVICE_NAME
    relay: OutboxRelay = field(init=False)
    auto_closer: PeriodicTask = field(init=False)
    inbox_pruner: PeriodicTask = field(init=False)

    def __post_init__(self) -> None:
        self.relay = self.outbox_relay(tables.outbox)
        self.inbox_pruner = self.inbox_pruner_for(tables.inbox)
        self.auto_closer = auto_closer(self.unit_of_work, self.settings.auto_close_interval_seconds)
        register_consumers(self.broker, self.unit_of_work, group_id=self.settings.consumer_group)

    def unit_of_work(self, causation: Causation | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.session_factory, causation or Causation.new(), after_commit=self.relay.wake
        )

    def reader(self) -> UnitOfWork:
        return UnitOfWork(self.read_session_factory, Causation.new())


def bootstrap(settings: TicketCoreSettings | None = None) -> TicketCore:
    return TicketCore.from_settings(settings or TicketCoreSettings())
