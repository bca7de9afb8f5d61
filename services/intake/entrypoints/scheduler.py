"""intake's clock: a request ticket-core never answered is not left pending forever."""

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from .. import handlers
from ..store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class RequestExpirer:
    def __init__(
        self, new_uow: Callable[[], UnitOfWork], timeout_seconds: int, interval_seconds: float
    ) -> None:
        self._new_uow = new_uow
        self._timeout = timeout_seconds
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def run_forever(self) -> None:
        while True:
            try:
                expired = await handlers.expire_pending(
                    self._new_uow, datetime.now(UTC), self._timeout
                )
                if expired:
                    log.warning("ticket_requests_timed_out", count=expired)
            except Exception:
                log.exception("request_expiry_failed")  # tried again next round
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="request-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
