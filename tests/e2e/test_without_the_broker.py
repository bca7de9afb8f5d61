"""The services start and serve without the broker, and catch up when it comes: the four
services start while nothing listens on their broker's port (alive, not ready, saying they
wait for the broker), the dashboard creates a ticket meanwhile (ticket-core stores it and its
event waits in the outbox), then a broker starts on that port, without topics: each service
says it waits for `helpdesk topics` and creates none itself. Once they are made, every service
becomes ready, the event is published and reaches the activity log, once. On SIGTERM each
service stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.local_run import RunningSystem
from shared.contracts.topics import topic_names_with_dead_letters
from shared.kafka_admin import ensure_topics
from tests.e2e.conftest import SERVICES_WITH_DATABASES, Workspace, history, plan_on_free_ports
from tests.support.credentials import strong_secrets
from tests.support.own_servers import OwnBroker


@pytest.fixture
def later_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    broker = OwnBroker(tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.run("stop")


def helpdesk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services", *args], env=env, capture_output=True, text=True
    )


async def readiness(client: httpx.AsyncClient, port: int) -> tuple[int, dict[str, Any]]:
    answer = await client.get(f"http://127.0.0.1:{port}/readyz")
    return answer.status_code, answer.json()


async def said_in_readiness(client: httpx.AsyncClient, port: int, words: str) -> str:
    """The broker check of a service's /readyz once it contains `words` (within 60 s)."""
    check = ""
    for _ in range(600):
        _, body = await readiness(client, port)
        check = body["checks"].get("kafka", body["checks"].get("broker", ""))
        if words in check:
            return str(check)
        await asyncio.sleep(0.1)
    raise AssertionError(f"the service on port {port} never said {words!r}; last: {check!r}")


async def topics_and_partitions(bootstrap: str) -> dict[str, int]:
    """The broker's topics (but its own internal ones), each with its number of partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if not name.startswith("__")]
        described = await admin.describe_topics(names) if names else []
        return {topic["topic"]: len(topic["partitions"]) for topic in described}
    finally:
        await admin.close()


async def test_services_start_without_the_broker_and_catch_up_when_it_comes(
    later_broker: OwnBroker, tmp_path: Path
) -> None:
    urls = {
        name: f"sqlite+aiosqlite:///{tmp_path / name.lower()}.db"
        for name in SERVICES_WITH_DATABASES
    }
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": later_broker.bootstrap,
        **strong_secrets(),
        "HELPDESK_ENV": "production",
        **{f"{name}_DATABASE_URL": url for name, url in urls.items()},
    }
    migrated = helpdesk({**os.environ, **env}, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    plan = plan_on_free_ports(urls, env)
    system = RunningSystem(plan, tmp_path / "logs")
    # Alive (`/healthz`) is all a service can be without its broker.
    await asyncio.to_thread(system.start, until="/healthz")
    try:
        async with httpx.AsyncClient(timeout=15.0) as client:
            ports = {service.name: service.port for service in plan.services()}
            for name, port in ports.items():
                status, body = await readiness(client, port)
                assert status == 503, (name, body)
                waited = body["checks"]["kafka" if name == "gateway" else "broker"]
                assert waited.startswith("failing: connecting to the Kafka broker"), (name, body)

            # The dashboard works meanwhile: ticket-core stores the ticket, its event waits.
            created = await asyncio.to_thread(
                helpdesk,
                {**os.environ, **env},
                "create-workspace",
                "Acme",
                "--owner-email",
                "owner@acme.io",
                "--json",
            )
            assert created.returncode == 0, created.stderr
            team = Workspace.printed(created.stdout)
            gateway = f"http://127.0.0.1:{plan.gateway_port}"
            answer = await client.post(
                f"{gateway}/api/v1/tickets",
                json={"subject": "Made before the broker came"},
                headers=team.auth,
            )
            assert answer.status_code == 201, answer.text
            ticket = answer.json()
            # Only the live stream needs the broker: the client is told to come back.
            stream = await client.get(f"{gateway}/api/v1/stream", headers=team.auth)
            assert stream.status_code == 503, stream.text
            assert stream.json()["code"] == "stream_unavailable"
            assert stream.headers["Retry-After"] == "5"

            await asyncio.to_thread(later_broker.run, "start")
            # A broker without the topics yet: each service waits for `helpdesk topics` and
            # says so, and creates none itself (FastStream would, with one partition each).
            for port in ports.values():
                await said_in_readiness(client, port, "waiting for `helpdesk topics`")
            assert await topics_and_partitions(later_broker.bootstrap) == {}
            await ensure_topics(later_broker.bootstrap)

            # The bound only limits a failure, which then says what each service waits for.
            waiting = await asyncio.to_thread(system.not_ready_after, 90.0)
            assert waiting == {}, waiting

            async with httpx.AsyncClient(base_url=gateway, timeout=15.0) as dashboard:
                [entry] = await history(dashboard, ticket["id"], team.auth, 1)
            assert entry["type"] == "ticket.created"
            _, core = await readiness(client, plan.ticket_core_port)
            assert core["details"]["outbox"]["pending"] == 0
            made = await topics_and_partitions(later_broker.bootstrap)
            assert made == dict(topic_names_with_dead_letters())
    finally:
        await asyncio.to_thread(system.stop)
    # SIGTERM: each service finished what it held and ended by itself (uvicorn re-raises the
    # signal once it has shut down); none had to be killed.
    assert {name: p.returncode for name, p in system.processes.items()} == {
        name: -signal.SIGTERM for name in system.processes
    }
    for name in system.processes:
        assert "Application shutdown complete." in (tmp_path / "logs" / f"{name}.log").read_text()
