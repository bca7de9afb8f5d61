from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.inbox import first_delivery

from . import tables
from .repository import ActivityRepository


class UnitOfWork:
    activity: ActivityRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def __aenter__(self) -> "UnitOfWork":
        self._session = self._session_factory()
        await self._session.begin()
        self.activity = ActivityRepository(self._session)
        return self

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

    async def first_delivery(self, consumer: str, message_id: object) -> bool:
        return await first_delivery(self._session, tables.inbox, consumer, str(message_id))

    async def commit(self) -> None:
        await self._session.commit()
