"""Work a service does on its own beside handling messages, run the same way everywhere:
started with the service, stopped before its broker and database."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.broker import stop_broker

log = structlog.get_logger(__name__)


class BackgroundWork(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


class PeriodicTask:
    """Runs `run_once` every `interval_seconds`; a failure is logged and retried next round."""

    def __init__(
        self, name: str, interval_seconds: float, run_once: Callable[[], Awaitable[Any]]
    ) -> None:
        self.name = name
        self._interval = interval_seconds
        self._run_once = run_once
        self._task: asyncio.Task[None] | None = None

    async def _run_forever(self) -> None:
        while True:
            try:
                await self._run_once()
            except Exception:
                log.exception("periodic_task_failed", task=self.name)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def service_lifespan(
    broker: KafkaBroker,
    engine: AsyncEngine,
    background: Sequence[BackgroundWork] = (),
    *,
    also_dispose: Sequence[AsyncEngine] = (),
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """Start the broker (its consumers) and the background work; stop them in reverse."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await broker.start()
        for work in background:
            work.start()
        try:
            yield
        finally:
            for work in reversed(background):
                await work.stop()
            await stop_broker(broker)
            await engine.dispose()
            for other in also_dispose:
                await other.dispose()

    return lifespan
