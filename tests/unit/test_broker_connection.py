"""BrokerConnection keeps trying until the broker answers, whatever a failed attempt leaves
behind: here an attempt cut short whose undo (`broker.stop()`) never returns, which once held
a service not ready for good after its broker had come back."""

import asyncio
from typing import cast

import pytest
import structlog
from faststream.kafka import KafkaBroker

import shared.background as background
from shared.background import BrokerConnection
from shared.settings import SystemSettings


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
    async def broker_answers(_settings: SystemSettings, _topics: object) -> None:
        return None

    monkeypatch.setattr(background, "probe_broker", broker_answers)
    monkeypatch.setattr(background, "CONNECT_ATTEMPT_SECONDS", 0.05)
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
    monkeypatch.setattr(background, "CONSUMER_DRAIN_SECONDS", 0.05)
    monkeypatch.setattr(background, "PRODUCER_STOP_SECONDS", 0.05)
    await connection.stop()


async def test_a_stop_step_that_never_ends_is_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service whose consumers or producer never finish stopping still stops: it used to
    stay alive after SIGTERM, consuming as a stranger beside the next system on its broker."""

    async def broker_answers(_settings: SystemSettings, _topics: object) -> None:
        return None

    async def consumers_never_stop(_broker: KafkaBroker) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(background, "probe_broker", broker_answers)
    monkeypatch.setattr(background, "stop_consuming", consumers_never_stop)
    monkeypatch.setattr(background, "CONSUMER_DRAIN_SECONDS", 0.05)
    monkeypatch.setattr(background, "PRODUCER_STOP_SECONDS", 0.05)

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

    async def broker_answers(_settings: SystemSettings, _topics: object) -> None:
        return None

    monkeypatch.setattr(background, "probe_broker", broker_answers)
    monkeypatch.setattr(background, "CONNECT_ATTEMPT_SECONDS", 0.05)
    monkeypatch.setattr(background, "dependency_backoff_seconds", lambda _attempt: 60.0)
    monkeypatch.setattr(background, "PRODUCER_STOP_SECONDS", 0.05)

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
