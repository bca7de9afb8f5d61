"""Wires activity-log's parts together once per process (or per test)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from shared.background import PeriodicTask
from shared.service import ServiceParts

from .entrypoints.consumer import register_consumers
from .settings import ActivityLogSettings
from .store import tables
from .store.unit_of_work import UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "store" / "migrations"
SERVICE_NAME = "activity-log"


@dataclass(kw_only=True)
class ActivityLog(ServiceParts[ActivityLogSettings]):
    name: ClassVar[str] = SERVICE_NAME
    inbox_pruner: PeriodicTask = field(init=False)

    def __post_init__(self) -> None:
        self.inbox_pruner = self.inbox_pruner_for(tables.inbox)
        register_consumers(self.broker, self.unit_of_work, group_id=self.settings.consumer_group)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def reader(self) -> UnitOfWork:
        return UnitOfWork(self.read_session_factory)


def bootstrap(settings: ActivityLogSettings | None = None) -> ActivityLog:
    return ActivityLog.from_settings(settings or ActivityLogSettings())
