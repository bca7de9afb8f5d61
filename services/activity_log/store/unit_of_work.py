"""One transaction per event: the entry and the inbox record commit together."""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.unit_of_work import SqlUnitOfWork

from . import tables
from .repository import ActivityRepository, PositionRepository


class UnitOfWork(SqlUnitOfWork):
    inbox_table = tables.inbox
    activity: ActivityRepository
    positions: PositionRepository

    def _open_repositories(self, session: AsyncSession) -> None:
        self.activity = ActivityRepository(session)
        self.positions = PositionRepository(session)
