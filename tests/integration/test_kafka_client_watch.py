"""A service whose Kafka client has failed for good stops itself to be started again.

aiokafka never restarts a client's background work. In a fresh-clone CI run, a broker
restart under uvloop made a write on the closed connection raise RuntimeError inside
activity-log's group coordination (aiokafka#1038). The coordination ended; the process stayed
up, logging "Kafka error occurred" every 5 s, and stored nothing more. Here the same error is
raised in the same place, on a real consumer of the real broker: in the test's process, and
in a real activity-log process."""

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer

from services.activity_log.bootstrap import ActivityLog
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.handlers import ticket_history
from services.activity_log.settings import ActivityLogSettings
from shared.background import RESTART_EXIT_CODE, BrokerConnection
from shared.broker import (
    create_watching_broker,
    existing_topic,
    failed_kafka_clients,
    kafka_client_tasks,
)
from shared.contracts.topics import TICKET_EVENTS
from shared.settings import SystemSettings
from tests.e2e.conftest import free_port
from tests.integration.support import ticket_event
from tests.support.activity_log_failing_client import break_group_coordination
from tests.support.credentials import strong_secrets
from tests.support.kafka_reader import start_group_at_end
from tests.support.waiting import eventually


class RunningActivityLog:
    """activity-log's consumers and producer, connected as its process connects them, with
    what its connection would do on a failed client recorded instead of done."""

    def __init__(self, service: ActivityLog, settings: ActivityLogSettings) -> None:
        self.service = service
        self.failures: list[str] = []
        self.connection = BrokerConnection(
            service.broker, settings, on_failed_client=self.failures.append
        )

    async def __aenter__(self) -> "RunningActivityLog":
        self.connection.start()
        await eventually(self._connected, what="activity-log connected to the broker")
        return self

    async def _connected(self) -> bool:
        return self.connection.connected.is_set()

    async def __aexit__(self, *_exc: object) -> None:
        await self.connection.stop()
        await self.service.engine.dispose()


@pytest.fixture
async def settings(kafka: str, activity_log_url: str) -> ActivityLogSettings:
    group = f"activity-log-test-{uuid4()}"
    await start_group_at_end(kafka, group, TICKET_EVENTS)
    return ActivityLogSettings(
        database_url=activity_log_url, kafka_bootstrap_servers=kafka, consumer_group=group
    )


@pytest.fixture
async def activity_log(settings: ActivityLogSettings) -> AsyncIterator[RunningActivityLog]:
    async with RunningActivityLog(bootstrap_activity_log(settings), settings) as running:
        yield running


async def test_every_client_task_is_found_and_running(activity_log: RunningActivityLog) -> None:
    """The watch reads aiokafka's private attributes: an aiokafka that renames them fails
    here instead of leaving the watch blind."""
    watched = {name: task.done() for name, task in kafka_client_tasks(activity_log.service.broker)}
    assert watched == {
        f"consumer of {TICKET_EVENTS.name}: group coordination": False,
        f"consumer of {TICKET_EVENTS.name}: fetching": False,
        "producer: sending": False,
    }
    assert failed_kafka_clients(activity_log.service.broker) == []
    await activity_log.connection.check()  # ready


async def test_a_consumer_without_a_group_is_watched_too(kafka: str) -> None:
    """As the gateway's live feed reads (every replica every event)."""
    broker = create_watching_broker(SystemSettings(kafka_bootstrap_servers=kafka), client_id="t")

    @broker.subscriber(
        existing_topic(TICKET_EVENTS.name), group_id=None, auto_offset_reset="latest"
    )
    async def ignore(_event: bytes) -> None:
        return None

    await broker.start()
    try:
        watched = {name: task.done() for name, task in kafka_client_tasks(broker)}
        assert watched == {
            f"consumer of {TICKET_EVENTS.name}: group coordination": False,
            f"consumer of {TICKET_EVENTS.name}: fetching": False,
            "producer: sending": False,
        }
    finally:
        await broker.stop()


async def test_a_consumer_whose_coordination_failed_stops_the_process_and_a_restart_recovers(
    activity_log: RunningActivityLog, settings: ActivityLogSettings, producer: AIOKafkaProducer
) -> None:
    (subscriber,) = activity_log.service.broker.subscribers
    break_group_coordination(subscriber.consumer)  # type: ignore[attr-defined]
    await eventually(lambda: _first(activity_log.failures), what="the failed client reported")

    (reason,) = activity_log.failures
    assert f"consumer of {TICKET_EVENTS.name}: group coordination ended after" in reason
    assert "the handler is closed" in reason
    with pytest.raises(RuntimeError, match="supervisor starts it again") as not_ready:
        await activity_log.connection.check()
    assert "group coordination ended" in str(not_ready.value)

    # Published while the consumer is dead; the restarted process (same group) stores it.
    event = ticket_event(uuid4(), str(uuid4()), 1)
    await producer.send_and_wait(
        TICKET_EVENTS.name, event.model_dump_json().encode(), key=event.subject.encode()
    )
    await activity_log.connection.stop()  # bounded, though one of its clients is dead
    async with RunningActivityLog(bootstrap_activity_log(settings), settings) as restarted:

        async def stored() -> list[object] | None:
            entries = await ticket_history(
                restarted.service.unit_of_work(), event.workspace_id, event.subject
            )
            return entries or None  # type: ignore[return-value]

        (entry,) = await eventually(stored, what="the event stored after the restart")
        assert entry.event_id == event.id  # type: ignore[attr-defined]
        assert restarted.failures == []


async def _first(failures: list[str]) -> str | None:
    return failures[0] if failures else None


async def test_the_process_stops_as_on_sigterm_and_exits_to_be_started_again(
    settings: ActivityLogSettings, tmp_path: Path
) -> None:
    """`helpdesk run`, Compose and Kubernetes start again a process that exits: this one
    finishes its stop first (consumers, then producer) and says why it exits."""
    log_path = tmp_path / "activity-log.log"
    env = {
        **os.environ,
        **strong_secrets(),
        "HELPDESK_ENV": "production",
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ACTIVITY_LOG_DATABASE_URL": settings.database_url,
        "ACTIVITY_LOG_CONSUMER_GROUP": settings.consumer_group,
        "ACTIVITY_LOG_HTTP_PORT": str(free_port()),
    }
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.support.activity_log_failing_client"),
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            exit_code = await asyncio.wait_for(process.wait(), timeout=90)
        finally:
            if process.returncode is None:
                process.kill()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert exit_code == RESTART_EXIT_CODE, log_path.read_text()[-3000:]
    (failed,) = [line for line in lines if line["event"] == "kafka_client_failed"]
    assert "group coordination ended after" in failed["failed"][0]
    assert "supervisor starts it again" in failed["action"]
    # Stopped as on SIGTERM, after the failure: not killed, not crashed.
    assert events.index("kafka_client_failed") < events.index("Application shutdown complete.")
