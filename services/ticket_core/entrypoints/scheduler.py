"""ticket-core's clock: closes resolved tickets after their workspace's idle period.

Every replica runs it; the version check on each close makes sure a ticket is closed (and
its event published) once, whichever replica gets there first.
"""

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from .. import handlers
from ..store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class AutoCloser:
    def __init__(self, new_uow: Callable[[], UnitOfWork], interval_seconds: float) -> None:
        self._new_uow = new_uow
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def run_forever(self) -> None:
        while True:
            try:
                closed = await handlers.close_resolved_tickets(self._new_uow, datetime.now(UTC))
                if closed:
                    log.info("resolved_tickets_auto_closed", count=closed)
            except Exception:
                log.exception("auto_close_failed")  # tried again next round
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="auto-close")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
