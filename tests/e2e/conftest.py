"""End-to-end tests: the four services run as real processes (`python -m services.<name>`)
against the real Kafka broker, and the tests use them exactly as their users do: the dashboard
through the gateway's HTTP API, a subscriber through `ticket.events.v1`, an operator through
the `helpdesk` command. The whole system runs once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import func, select

from services.local_run import ReplicaPorts, RunningSystem, SystemPlan
from services.ticket_core.store import tables as ticket_core_tables
from shared.contracts.topics import TICKET_EVENTS
from shared.db import create_engine
from tests.conftest import DATABASE_KINDS
from tests.support.credentials import strong_secrets
from tests.support.infrastructure import REPO_ROOT
from tests.support.jwks import IdentityProvider
from tests.support.kafka_reader import start_group_at_end, start_service_groups_at_end
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

SERVICES_WITH_DATABASES = ("TICKET_CORE", "ACTIVITY_LOG", "INTAKE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def history(
    gateway: httpx.AsyncClient,
    ticket_id: str,
    headers: dict[str, str],
    count: int,
    *,
    of: str = "tickets",
) -> list[dict[str, Any]]:
    """The first `count` entries, once there; `of="deleted-tickets"` for a deleted ticket."""

    async def complete() -> list[dict[str, Any]] | None:
        answer = await gateway.get(f"/api/v1/{of}/{ticket_id}/activity", headers=headers)
        if answer.status_code != 200:  # not deleted yet, as activity-log has heard
            return None
        items: list[dict[str, Any]] = answer.json()["items"]
        return items if len(items) >= count else None

    return await eventually(complete, what=f"{count} history entries")


def plan_on_free_ports(
    urls: dict[str, str],
    env: dict[str, str],
    *,
    gateway_port: int | None = None,
    replicas: int = 1,
) -> SystemPlan:
    """A system whose every listener is on a port of its own: the defaults (8000, 8113, ...)
    would clash with `make run` or another test's system on the machine. With `replicas=N`
    every service runs as N processes (`RunningSystem.names_of`: `ticket-core-1`, ...), each on
    free ports; `gateway_port` is the first gateway's."""
    ports = distinct_free_ports(5 * replicas, taken={gateway_port} if gateway_port else set())
    if gateway_port:
        ports[0] = gateway_port
    first, *others = (ReplicaPorts(*ports[k : k + 5]) for k in range(0, len(ports), 5))
    return SystemPlan(
        gateway_port=first.gateway,
        ticket_core_port=first.ticket_core,
        activity_log_port=first.activity_log,
        intake_port=first.intake,
        intake_internal_port=first.intake_internal,
        database_urls=urls,
        extra_env=env,
        other_replicas=tuple(others),
    )


def distinct_free_ports(count: int, taken: set[int]) -> list[int]:
    """`count` free ports, none twice and none in `taken` (each probe's socket is closed
    before the next, so the system may offer a port again)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)
    return ports


def migrate(env: dict[str, str]) -> None:
    """`helpdesk migrate`, as an operator runs it before starting the services."""
    migrated = subprocess.run(
        [sys.executable, "-m", "services", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr


@dataclass(frozen=True)
class Workspace:
    """A member of a workspace as the dashboard knows them: ids and a bearer token (for a
    workspace just made, its founding owner)."""

    workspace_id: str
    member_id: str
    token: str

    @classmethod
    def printed(cls, output: str) -> Workspace:
        """From what `helpdesk create-workspace --json` prints (more than these fields)."""
        fields = json.loads(output)
        return cls(fields["workspace_id"], fields["member_id"], fields["token"])

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def actor(self) -> dict[str, str]:
        """How events and activity entries name this member."""
        return {"type": "member", "id": self.member_id}


async def hire(system: System, client: httpx.AsyncClient, boss: Workspace, role: str) -> Workspace:
    """`boss` adds a member with `role` through the dashboard; the operator mints their token
    with `helpdesk token`."""
    added = await client.post(
        "/api/v1/members",
        json={"email": f"{role}-{uuid4().hex[:10]}@acme.io", "role": role},
        headers=boss.auth,
    )
    assert added.status_code == 201, added.text
    member_id = added.json()["id"]
    minted = system.helpdesk("token", "--workspace", boss.workspace_id, "--member", member_id)
    assert minted.returncode == 0, minted.stderr
    return Workspace(boss.workspace_id, member_id, minted.stdout.strip())


@dataclass
class System:
    kind: str
    running: RunningSystem
    env: dict[str, str]
    kafka: str

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.running.plan.gateway_port}"

    @property
    def widget(self) -> str:
        """intake's public widget API."""
        return f"http://127.0.0.1:{self.running.plan.intake_port}"

    @property
    def secrets(self) -> str:
        """`HELPDESK_INTERNAL_SECRETS` of this system: what internal credentials are signed with."""
        return self.env["HELPDESK_INTERNAL_SECRETS"]

    @property
    def internal_apis(self) -> dict[str, str]:
        """Each service's internal listener (the credential's audience → its address)."""
        plan = self.running.plan
        return {
            "ticket-core": f"http://127.0.0.1:{plan.ticket_core_port}",
            "activity-log": f"http://127.0.0.1:{plan.activity_log_port}",
            "intake": f"http://127.0.0.1:{plan.intake_internal_port}",
        }

    def helpdesk(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO_ROOT,
        )

    def create_workspace(self, name: str = "Acme") -> Workspace:
        created = self.helpdesk(
            "create-workspace", name, "--owner-email", f"owner-{uuid4().hex[:8]}@acme.io", "--json"
        )
        assert created.returncode == 0, created.stderr
        return Workspace.printed(created.stdout)

    async def ticket_core_counts(self) -> tuple[int, int]:
        """(tickets, outbox rows) in ticket-core's database: what a refusal must not change."""
        engine = create_engine(self.env["TICKET_CORE_DATABASE_URL"])
        try:
            async with engine.connect() as connection:
                tickets = await connection.scalar(
                    select(func.count()).select_from(ticket_core_tables.tickets)
                )
                outbox = await connection.scalar(
                    select(func.count()).select_from(ticket_core_tables.outbox)
                )
        finally:
            await engine.dispose()
        return int(tickets or 0), int(outbox or 0)


async def database_urls(kind: str, tmp: Path, admin_url: str | None) -> dict[str, str]:
    """A new database per service (`TICKET_CORE` → its URL): SQLite files in `tmp`, or
    PostgreSQL databases made through `admin_url`."""
    if kind == "sqlite":
        return {
            name: f"sqlite+aiosqlite:///{tmp / name.lower()}.db" for name in SERVICES_WITH_DATABASES
        }
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    assert admin_url is not None
    urls = {}
    connection = await asyncpg.connect(admin_url)
    try:
        for name in SERVICES_WITH_DATABASES:
            database = f"e2e_{name.lower()}_{uuid4().hex[:10]}"
            await connection.execute(f'CREATE DATABASE "{database}"')
            urls[name] = (
                make_url(admin_url)
                .set(drivername="postgresql+asyncpg", database=database)
                .render_as_string(hide_password=False)
            )
    finally:
        await connection.close()
    return urls


@pytest.fixture(scope="package")
def identity_provider() -> Iterator[IdentityProvider]:
    """An RS256 identity provider whose key set the gateway is configured with."""
    with IdentityProvider() as provider:
        yield provider


@dataclass(frozen=True)
class Assistant:
    """An assistant as its widget knows it: its id, its widget key, and (so that each test's
    visitors have budgets of their own) the client address its calls come from, told to intake
    through `X-Forwarded-For`, which the e2e system trusts from 127.0.0.1."""

    id: str
    widget_key: str
    visitor_address: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Widget-Key": self.widget_key, "X-Forwarded-For": self.visitor_address}


def new_visitor_address() -> str:
    number = int(uuid4().hex[:6], 16)
    return f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


async def configure_assistant(
    gateway: httpx.AsyncClient,
    boss: Workspace,
    enabled: bool = True,
    contact: bool = False,
    **more_settings: Any,
) -> Assistant:
    """A new assistant of `boss`'s workspace, with these ticket settings saved through the
    dashboard API; its id and widget key."""
    assistant = f"asst-{uuid4().hex[:10]}"
    saved = await gateway.put(
        f"/api/v1/assistants/{assistant}/ticket-settings",
        json={"ticket_creation_enabled": enabled, "require_contact_info": contact, **more_settings},
        headers=boss.auth,
    )
    assert saved.status_code == 200, saved.text
    return Assistant(assistant, saved.json()["widget_key"], new_visitor_address())


# Package scope: the systems stop when the e2e tests end, so their consumers never take part
# in other tests (they would, for instance, dead-letter those tests' poison messages too).
@pytest.fixture(scope="package", params=DATABASE_KINDS)
def system(
    request: pytest.FixtureRequest,
    kafka: str,
    tmp_path_factory: pytest.TempPathFactory,
    identity_provider: IdentityProvider,
) -> Iterator[System]:
    import asyncio

    kind: str = request.param
    tmp = tmp_path_factory.mktemp(f"system-{kind}")
    admin_url = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    urls = asyncio.run(database_urls(kind, tmp, admin_url))
    group = f"e2e-{uuid4().hex[:8]}"
    # Fresh consumer groups read their topics from the beginning; these start at the end,
    # so the system does not first work through the backlog earlier tests left.
    asyncio.run(start_group_at_end(kafka, group, TICKET_EVENTS))
    asyncio.run(start_service_groups_at_end(kafka, group))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        # Production mode (the default) with strong secrets, as a deployment runs.
        **strong_secrets(),
        "HELPDESK_ENV": "production",
        "ACTIVITY_LOG_CONSUMER_GROUP": group,
        "TICKET_CORE_CONSUMER_GROUP": group,
        "INTAKE_CONSUMER_GROUP": group,
        # Low enough for a test to reach it with a few requests.
        "INTAKE_RATE_LIMIT_PER_CONVERSATION": "4",
        "INTAKE_RATE_LIMIT_PER_ADDRESS": "20",
        "INTAKE_RATE_LIMIT_PER_ASSISTANT": "60",
        # Each test's visitors come from an address of their own (X-Forwarded-For).
        "INTAKE_TRUSTED_PROXIES": "127.0.0.1",
        # Roles are cached for an hour here: a change of role or membership can only reach
        # the gateway in time through the member.* events that drop the cached entry.
        "GATEWAY_MEMBERSHIP_CACHE_SECONDS": "3600",
        "GATEWAY_STREAM_HEARTBEAT_SECONDS": "1",
        # RS256 tokens of an identity provider are accepted beside `helpdesk token`'s HS256.
        "GATEWAY_JWKS_URL": identity_provider.jwks_url,
        **{f"{name}_DATABASE_URL": url for name, url in urls.items()},
    }
    plan = plan_on_free_ports(urls, env)
    migrate(env)
    with RunningSystem(plan, tmp / "logs").start() as running:
        yield System(kind=kind, running=running, env=env, kafka=kafka)


@pytest.fixture
async def gateway(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway, timeout=15.0) as client:
        yield client
