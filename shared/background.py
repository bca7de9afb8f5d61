"""Work a service does on its own beside handling messages, run the same way everywhere:
started with the service, stopped before its broker and database.

A service starts and stays up without its broker: `BrokerConnection` connects in the
background, retrying with capped backoff for as long as the broker is unreachable, while the
HTTP listeners already answer (`/healthz` 200; `/readyz` 503 saying what is waited for). Its
consumers, its outbox relay and its periodic tasks start once the broker answers; what the
service's own transactions write to the outbox meanwhile stays there and goes out then.

Once connected, it watches its Kafka clients: aiokafka never restarts a client whose
background work has failed, so a process holding one stops (as on SIGTERM) and exits with
RESTART_EXIT_CODE for its supervisor to start it again, instead of staying up unable to
consume.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.broker import (
    CONSUMER_DRAIN_SECONDS,
    dependency_backoff_seconds,
    failed_kafka_clients,
    probe_broker,
    stop_consuming,
    subscribed_topics,
)
from shared.settings import SystemSettings

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


CONNECT_ATTEMPT_SECONDS = 20.0
# How often a connected service looks at its Kafka clients' background work.
CLIENT_WATCH_SECONDS = 2.0
# EX_TEMPFAIL: the process stopped itself to be started again (see stop_process_for_restart).
RESTART_EXIT_CODE = 75
# The producer's own stop flushes what it holds; a broker that went away and came back can
# leave a request it never answers, and the process must still be gone in time (shared.http).
PRODUCER_STOP_SECONDS = 3.0


_restart_reason: str | None = None


def _sigterm_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


# How this process is stopped gracefully: `shared.http.run_service` sets its server's own.
stop_this_process: Callable[[], None] = _sigterm_this_process


def stop_process_for_restart(reason: str) -> None:
    """Stop this process as SIGTERM does (requests in flight finish, consumers commit what they
    did) and have it exit with RESTART_EXIT_CODE: its supervisor (`helpdesk run`, Compose's
    restart policy, Kubernetes) starts it again with new clients."""
    global _restart_reason
    _restart_reason = reason
    stop_this_process()


def restart_reason() -> str | None:
    """Why this process stopped itself to be started again, if it did."""
    return _restart_reason


class BrokerConnection:
    """Starts `broker` (its producer, then its subscribers) in the background and keeps trying,
    with capped exponential backoff, until it answers; then starts the work that needs it.
    `connect` replaces `broker.start` for a service that does more to connect (the gateway's
    live feed). Every failed attempt is undone before the next, so nothing runs half-started."""

    def __init__(
        self,
        broker: KafkaBroker,
        settings: SystemSettings,
        *,
        connect: Callable[[], Awaitable[None]] | None = None,
        on_failed_client: Callable[[str], None] = stop_process_for_restart,
    ) -> None:
        self.broker = broker
        self._settings = settings
        self._connect = connect or broker.start
        self._on_failed_client = on_failed_client
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.failed_clients: list[str] = []
        self._started: list[BackgroundWork] = []
        self.connected = asyncio.Event()
        self.attempts = 0
        self.last_error: str | None = None

    def start(self, then_start: Sequence[BackgroundWork] = ()) -> None:
        self._task = asyncio.create_task(self._connect_until_done(then_start), name="broker")

    async def _connect_until_done(self, then_start: Sequence[BackgroundWork]) -> None:
        while True:
            self.attempts += 1
            try:
                await self._attempt()
                break
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                delay = dependency_backoff_seconds(self.attempts)
                log.warning(
                    "waiting_for_dependency",
                    dependency="broker",
                    attempt=self.attempts,
                    retry_in_seconds=round(delay, 2),
                    error=self.last_error,
                )
                # Bounded too: undoing an attempt cut short mid-handshake must not hang the
                # loop (a consumer leaving a group whose coordinator is not there yet).
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CONNECT_ATTEMPT_SECONDS):
                        await self.broker.stop()
                await asyncio.sleep(delay)
        self.connected.set()
        self.last_error = None
        log.info("dependency_connected", dependency="broker", attempts=self.attempts)
        for work in then_start:
            work.start()
            self._started.append(work)
        self._watch = asyncio.create_task(self._watch_clients(), name="kafka-client-watch")

    async def _attempt(self) -> None:
        """One try, bounded: a broker that answers but lacks a topic yet would otherwise hold
        it for aiokafka's 40 s request timeout. One cut short says where it waited, so that a
        broker that never lets a service connect can be told from a slow one."""
        attempt = asyncio.create_task(self._probe_and_connect(), name="broker-connect-attempt")
        try:
            done, _ = await asyncio.wait({attempt}, timeout=CONNECT_ATTEMPT_SECONDS)
        except asyncio.CancelledError:  # the service stops meanwhile
            attempt.cancel()
            raise
        if done:
            return attempt.result()
        where = awaited_in(attempt)
        attempt.cancel()
        # Its own undo (a `finally`) runs, bounded too; `broker.stop()` comes next.
        await asyncio.wait({attempt}, timeout=CONNECT_ATTEMPT_SECONDS)
        raise TimeoutError(f"no answer within {CONNECT_ATTEMPT_SECONDS:g} s, waiting in {where}")

    async def _probe_and_connect(self) -> None:
        await probe_broker(self._settings, subscribed_topics(self.broker))
        await self._connect()

    async def _watch_clients(self) -> None:
        while not self.failed_clients:
            await asyncio.sleep(CLIENT_WATCH_SECONDS)
            try:
                self.failed_clients = failed_kafka_clients(self.broker)
            except Exception as error:  # a look that fails is no reason to stop a process
                log.warning("kafka_client_watch_failed", error=repr(error))
        log.error(
            "kafka_client_failed",
            failed=self.failed_clients,
            action="stopping this process so that its supervisor starts it again",
        )
        self._on_failed_client("; ".join(self.failed_clients))

    async def check(self) -> None:
        """Readiness: connected and answering, or why not."""
        if not self.connected.is_set():
            raise RuntimeError(
                f"connecting to the Kafka broker in the background (attempt {self.attempts}"
                + (f", last error: {self.last_error}" if self.last_error else "")
                + ")"
            )
        if not await self.broker.ping(timeout=2.0):
            raise RuntimeError("the Kafka broker does not answer")
        if self.failed_clients:
            raise RuntimeError(
                "a Kafka client of this process failed and is not restarted by aiokafka ("
                + "; ".join(self.failed_clients)
                + "): the process is stopping so that its supervisor starts it again"
            )

    async def stop(self) -> None:
        """Stop in the order that loses nothing: the consumers finish what they hold and commit
        it; the background work stops, newest first, so the relay (the oldest) publishes what
        they and the last requests wrote to the outbox; then the producer goes."""
        if self._watch is not None:  # first: a stop ends the clients' tasks, which is no failure
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.connected.is_set():
            await _bounded("consumers", CONSUMER_DRAIN_SECONDS, stop_consuming(self.broker))
        for work in reversed(self._started):
            await work.stop()
        self._started.clear()
        if self.connected.is_set():
            # The producer: the consumers stopped above.
            await _bounded("producer", PRODUCER_STOP_SECONDS, self.broker.stop())
            self.connected.clear()
        else:  # stopped while an attempt was under way: undo what it had started
            with contextlib.suppress(Exception):
                await _bounded(
                    "undo of a connect attempt", PRODUCER_STOP_SECONDS, self.broker.stop()
                )


def awaited_in(task: "asyncio.Task[Any]", innermost: int = 3) -> str:
    """Where a suspended task waits: its innermost `innermost` coroutines, following awaited
    tasks, as "function (file:line)" from the outside in."""
    frames: list[str] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        if isinstance(awaitable, asyncio.Task):
            awaitable = awaitable.get_coro()
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
        if frame is None:
            break
        code = frame.f_code
        frames.append(f"{code.co_qualname} ({os.path.basename(code.co_filename)}:{frame.f_lineno})")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    return " > ".join(frames[-innermost:]) or "an unknown place"


async def _bounded(step: str, seconds: float, stopping: Awaitable[None]) -> None:
    """A step of a service's stop, given at most `seconds`: an unfinished offset commit means a
    redelivery (dropped by the inbox), an unfinished flush rows the relay sends next start; a
    step that never ends meant a process that never stopped, still consuming as a stranger."""
    try:
        async with asyncio.timeout(seconds):
            await stopping
    except TimeoutError:
        log.warning("stop_step_cut_short", step=step, after_seconds=seconds)


def service_lifespan(
    connection: BrokerConnection,
    engine: AsyncEngine,
    background: Sequence[BackgroundWork] = (),
    *,
    also_dispose: Sequence[AsyncEngine] = (),
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """Connect the broker in the background (then start the background work); stop them in
    reverse. The listeners serve from the start, whether the broker answers or not."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        connection.start(then_start=background)
        try:
            yield
        finally:
            await connection.stop()
            await engine.dispose()
            for other in also_dispose:
                await other.dispose()

    return lifespan
