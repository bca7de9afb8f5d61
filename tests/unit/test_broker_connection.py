"""BrokerConnection keeps trying until the broker answers, whatever a failed attempt leaves
behind (an attempt cut short whose undo, `broker.stop()`, never returns, once held a service
not ready for good after its broker had come back); says where an attempt it cut short
waited; and stops even when a stop step never ends."""

import asyncio
from typing import cast

import pytest
import structlog
from faststream.kafka import KafkaBroker

import shared.background as background
from shared.background import BrokerConnection
from shared.settings import SystemSettings


@pytest.fixture(autouse=True)
def broker_that_answers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe passes, and every bound of the connection is 50 ms."""

    async def broker_answers(_settings: SystemSettings, _topics: object) -> None:
        return None

    monkeypatch.setattr(background, "probe_broker", broker_answers)
    for bound in ("CONNECT_ATTEMPT_SECONDS", "CONSUMER_DRAIN_SECONDS", "PRODUCER_STOP_SECONDS"):
        monkeypatch.setattr(background, bound, 0.05)


class BrokerWhoseStopHangs:
    def __init__(self) -> None:
        self.stops = 0
        # What the connection's watch of the Kafka clients reads: none here.
        self.subscribers: list[object] = []
        self.config = None

    async def stop(self) -> None:
        self.stops += 1
        await asyncio.Event().wait()  # never set: the undo hangs


async def test_a_hanging_undo_does_not_stop_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "dependency_backoff_seconds", lambda _attempt: 0.0)
    attempts = 0

    async def connect() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.Event().wait()  # the first handshake never finishes

    broker = BrokerWhoseStopHangs()
    connection = BrokerConnection(cast(KafkaBroker, broker), SystemSettings(), connect=connect)
    connection.start()
    # The bound only limits a failure.
    await asyncio.wait_for(connection.connected.wait(), timeout=5.0)
    assert attempts == 2
    assert broker.stops == 1
    assert connection.last_error is None
    await connection.stop()


async def test_a_stop_step_that_never_ends_is_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service whose consumers or producer never finish stopping still stops: it used to
    stay alive after SIGTERM, consuming as a stranger beside the next system on its broker."""

    async def consumers_never_stop(_broker: KafkaBroker) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(background, "stop_consuming", consumers_never_stop)

    async def connect() -> None:
        return None

    broker = BrokerWhoseStopHangs()
    connection = BrokerConnection(cast(KafkaBroker, broker), SystemSettings(), connect=connect)
    connection.start()
    await asyncio.wait_for(connection.connected.wait(), timeout=5.0)

    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(connection.stop(), timeout=5.0)

    assert broker.stops == 1  # the producer's stop was called, and given up on
    cut_short = [entry["step"] for entry in logs if entry["event"] == "stop_step_cut_short"]
    assert cut_short == ["consumers", "producer"]


async def test_an_attempt_cut_short_says_where_it_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare "TimeoutError" in /readyz says nothing; the place an attempt hung in does."""
    monkeypatch.setattr(background, "dependency_backoff_seconds", lambda _attempt: 60.0)

    async def partitions_never_assigned() -> None:
        await asyncio.Event().wait()

    async def connect() -> None:
        await partitions_never_assigned()

    connection = BrokerConnection(
        cast(KafkaBroker, BrokerWhoseStopHangs()), SystemSettings(), connect=connect
    )
    connection.start()
    while connection.last_error is None:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert connection.last_error.startswith("TimeoutError: no answer within 0.05 s, waiting in ")
    assert (
        "test_an_attempt_cut_short_says_where_it_waited.<locals>.connect" in connection.last_error
    )
    assert "partitions_never_assigned (test_broker_connection.py:" in connection.last_error
    with pytest.raises(RuntimeError, match="partitions_never_assigned"):
        await connection.check()
    await connection.stop()
