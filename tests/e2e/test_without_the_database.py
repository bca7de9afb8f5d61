"""The services start and serve without their databases, and recover when they come, without
a restart: the four services start while no PostgreSQL listens where their databases are
(alive, not ready, saying the database fails), a dashboard call gets 503 with `Retry-After`
(never a 500), then the server starts and the databases are made; every service becomes
ready, and a ticket created then reaches the activity log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from services.local_run import RunningSystem
from shared.auth import issue_token
from shared.contracts.topics import TICKET_EVENTS
from tests.e2e.conftest import (
    SERVICES_WITH_DATABASES,
    Workspace,
    history,
    plan_on_free_ports,
)
from tests.support.credentials import strong_secrets
from tests.support.kafka_reader import start_group_at_end, start_service_groups_at_end
from tests.support.own_servers import OwnPostgres
from tests.support.waiting import eventually


@pytest.fixture
def later_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        yield server
    finally:
        server.run("stop", "--purge")


def helpdesk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


async def test_services_start_without_their_databases_and_recover_when_they_come(
    later_postgres: OwnPostgres, kafka: str, tmp_path: Path
) -> None:
    group = f"e2e-nodb-{uuid4().hex[:8]}"
    await start_group_at_end(kafka, group, TICKET_EVENTS)
    await start_service_groups_at_end(kafka, group)
    databases = {name: f"nodb_{name.lower()}_{uuid4().hex[:8]}" for name in SERVICES_WITH_DATABASES}
    urls = {name: later_postgres.url(database) for name, database in databases.items()}
    secrets = strong_secrets()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        **secrets,
        "HELPDESK_ENV": "production",
        **{f"{name}_CONSUMER_GROUP": group for name in SERVICES_WITH_DATABASES},
        **{f"{name}_DATABASE_URL": url for name, url in urls.items()},
    }
    plan = plan_on_free_ports(urls, env)
    system = RunningSystem(plan, tmp_path / "logs")
    await asyncio.to_thread(system.start, until="/healthz")
    gateway = f"http://127.0.0.1:{plan.gateway_port}"
    try:
        async with httpx.AsyncClient(timeout=15.0) as client:
            for service in plan.services():
                if service.name == "gateway":
                    continue
                ready = await client.get(f"http://127.0.0.1:{service.port}/readyz")
                assert ready.status_code == 503, (service.name, ready.text)
                assert ready.json()["checks"]["database"].startswith("failing:"), ready.text

            # A dashboard call needs ticket-core's database (the caller's membership): the
            # client is told to come back, never that something broke.
            token = issue_token(
                uuid4(), uuid4(), secrets["HELPDESK_JWT_SECRET"], timedelta(minutes=5)
            )
            refused = await client.get(
                f"{gateway}/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "dependency_unavailable"
            assert refused.headers["Retry-After"] == "5"

            await asyncio.to_thread(later_postgres.run, "start")
            for database in databases.values():
                await asyncio.to_thread(later_postgres.run, "createdb", database)
            migrated = await asyncio.to_thread(helpdesk, env, "migrate")
            assert migrated.returncode == 0, migrated.stderr

            async def all_ready() -> bool:
                for service in plan.services():
                    ready = await client.get(f"http://127.0.0.1:{service.port}/readyz")
                    if ready.status_code != 200:
                        return False
                return True

            await eventually(all_ready, what="every service ready once its database came")
            created = await asyncio.to_thread(
                helpdesk, env, "create-workspace", "Acme", "--owner-email", "o@acme.io", "--json"
            )
            assert created.returncode == 0, created.stderr
            team = Workspace.printed(created.stdout)
            answer = await client.post(
                f"{gateway}/api/v1/tickets", json={"subject": "After the outage"}, headers=team.auth
            )
            assert answer.status_code == 201, answer.text
            ticket = answer.json()

            async with httpx.AsyncClient(base_url=gateway, timeout=15.0) as dashboard:
                [entry] = await history(dashboard, ticket["id"], team.auth, 1)
            assert entry["type"] == "ticket.created"
    finally:
        await asyncio.to_thread(system.stop)
