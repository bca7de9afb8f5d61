"""Replicas without processes: what `helpdesk run --replicas N` plans (names, ports, which
addresses each gateway tries), its refusal on SQLite, and the gateway's failover to another
replica when one refuses the connection."""

import asyncio
import json
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from services.cli import _running_banner, app
from services.gateway.settings import replica_addresses
from services.gateway.upstream import Upstream
from services.local_run import ReplicaPorts, RunningSystem, SystemPlan
from shared.internal_auth import InternalTokenSigner
from shared.problems import ProblemError

SECRET = "s" * 48


def test_replica_k_of_every_service_listens_on_the_first_ports_plus_100_per_replica() -> None:
    plan = SystemPlan().with_replicas(2)

    processes = {process.name: process for process in plan.services()}

    assert list(processes) == [
        "ticket-core-1",
        "activity-log-1",
        "intake-1",
        "gateway-1",
        "ticket-core-2",
        "activity-log-2",
        "intake-2",
        "gateway-2",
    ]
    assert processes["ticket-core-2"].env["TICKET_CORE_HTTP_PORT"] == "8201"
    assert processes["intake-2"].env["INTAKE_INTERNAL_PORT"] == "8213"
    assert processes["gateway-2"].port == 8100
    assert (processes["gateway-2"].service, processes["gateway-2"].replica) == ("gateway", 2)
    # Each gateway tries its own replica first, then the other; its widget is its own intake's.
    assert processes["gateway-1"].env["GATEWAY_TICKET_CORE_URL"] == (
        "http://127.0.0.1:8101,http://127.0.0.1:8201"
    )
    assert processes["gateway-2"].env["GATEWAY_TICKET_CORE_URL"] == (
        "http://127.0.0.1:8201,http://127.0.0.1:8101"
    )
    assert processes["gateway-2"].env["GATEWAY_WIDGET_API_URL"] == "http://127.0.0.1:8203"


def test_the_banner_lists_every_gateway_and_widget_address() -> None:
    banner = _running_banner(SystemPlan().with_replicas(2), "development", Path("var/log"))

    assert "dashboard API on http://127.0.0.1:8000, http://127.0.0.1:8100" in banner
    assert "widget API on http://127.0.0.1:8103, http://127.0.0.1:8203" in banner


def test_one_replica_keeps_the_service_names_and_single_addresses() -> None:
    plan = SystemPlan()

    assert [process.name for process in plan.services()] == [
        "ticket-core",
        "activity-log",
        "intake",
        "gateway",
    ]
    assert plan.services()[3].env["GATEWAY_INTAKE_URL"] == "http://127.0.0.1:8113"


def test_a_port_given_to_two_listeners_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^port\(s\) 8101 given to more than one listener"):
        SystemPlan(other_replicas=(ReplicaPorts(8100, 8101, 8202, 8203, 8213),))


def test_replicas_on_sqlite_are_refused_with_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKET_CORE_DATABASE_URL", "postgresql+asyncpg://u:secret@db/tc")
    monkeypatch.setenv("ACTIVITY_LOG_DATABASE_URL", "sqlite+aiosqlite:///./var/al.db")
    monkeypatch.setenv("INTAKE_DATABASE_URL", "sqlite+aiosqlite:///./var/in.db")

    result = CliRunner().invoke(app, ["run", "--replicas", "2"])

    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "--replicas 2 needs PostgreSQL, and activity-log and intake use SQLite" in said
    assert "A SQLite file takes one writer process" in said
    assert "Set ACTIVITY_LOG_DATABASE_URL and INTAKE_DATABASE_URL to postgresql+asyncpg://" in said
    assert "TICKET_CORE_DATABASE_URL" not in said


def test_a_list_of_addresses_is_read_in_order() -> None:
    assert replica_addresses(" http://a:1, http://b:2 ,") == ["http://a:1", "http://b:2"]


@asynccontextmanager
async def replica(answer: dict[str, str] | None, seen: list[str]) -> AsyncIterator[str]:
    """A local server standing for one replica, at the address it yields. It records each
    request it reads; with `answer` None it closes the connection without answering, as a
    replica that dies holding the request."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        seen.append(f"{method} {path}")
        if answer is not None:
            body = json.dumps(answer).encode()
            writer.write(
                b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def refusing_address() -> str:
    """An address nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def upstream(*addresses: str) -> Upstream:
    return Upstream(
        "ticket-core",
        addresses,
        InternalTokenSigner([SECRET], issuer="gateway"),
        timeout_seconds=5.0,
        connections=4,
    )


async def test_a_replica_that_refuses_the_connection_is_passed_over() -> None:
    seen: list[str] = []
    async with replica({"id": "t-1"}, seen) as answering:
        gateway_side = upstream(refusing_address(), answering)
        try:
            answer = await gateway_side.call(
                "POST", "/internal/v1/tickets", workspace_id=uuid4(), json={"subject": "x"}
            )
        finally:
            await gateway_side.aclose()

    assert answer == {"id": "t-1"}
    assert seen == ["POST /internal/v1/tickets"]


async def test_a_replica_lost_with_the_request_is_not_asked_again() -> None:
    """The request may have been applied: the client retries it (with its key), not the
    gateway."""
    seen: list[str] = []
    async with replica(None, seen) as lost, replica({"id": "t-2"}, seen) as other:
        gateway_side = upstream(lost, other)
        try:
            with pytest.raises(ProblemError) as refused:
                await gateway_side.call("POST", "/internal/v1/tickets", workspace_id=uuid4())
        finally:
            await gateway_side.aclose()

    problem = refused.value.problem
    assert (problem.status, problem.code) == (503, "upstream_unavailable")
    assert refused.value.headers == {"Retry-After": "2"}
    assert "same Idempotency-Key" in problem.detail
    assert seen == ["POST /internal/v1/tickets"]  # the lost one only


async def test_every_replica_refusing_is_upstream_unavailable() -> None:
    gateway_side = upstream(refusing_address(), refusing_address())
    try:
        with pytest.raises(ProblemError) as refused:
            await gateway_side.call("GET", "/internal/v1/tickets", workspace_id=uuid4())
    finally:
        await gateway_side.aclose()

    assert refused.value.problem.code == "upstream_unavailable"
    assert refused.value.problem.status == 503


async def test_the_path_reaches_the_service_as_encoded_and_a_query_list_is_repeated() -> None:
    """`forwarding._segment` percent-encodes each path segment (`.` too), so that no value
    can change which path is called; the client must not decode it on the way."""
    seen: list[str] = []
    async with replica({"id": "t-3"}, seen) as answering:
        gateway_side = upstream(answering)
        try:
            await gateway_side.call(
                "GET",
                "/internal/v1/tickets/%2E%2E%2Fmembers",
                workspace_id=uuid4(),
                params={"status": ["new", "open"], "mine": True, "q": None},
            )
        finally:
            await gateway_side.aclose()

    assert seen == ["GET /internal/v1/tickets/%2E%2E%2Fmembers?status=new&status=open&mine=true"]


def test_a_process_still_running_is_not_started_twice(tmp_path: Path) -> None:
    """A second process would fail on the first one's port and leave the first unstopped."""
    system = RunningSystem(SystemPlan(), tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    system.processes["ticket-core"] = sleeper
    try:
        with pytest.raises(RuntimeError, match="ticket-core is still running"):
            system.start_service("ticket-core")
    finally:
        sleeper.kill()
        sleeper.wait()
