"""Replicas without processes: what `helpdesk run --replicas N` plans (names, ports, which
addresses each gateway tries), its refusal on SQLite, and the gateway's failover to another
replica when one refuses the connection."""

import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import httpx
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


def client(answer: httpx.Response | Exception, seen: list[str]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host} {request.method} {request.url.path}")
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url=f"http://{uuid4()}")


def upstream(*clients: httpx.AsyncClient) -> Upstream:
    return Upstream("ticket-core", clients, InternalTokenSigner([SECRET], issuer="gateway"))


async def test_a_replica_that_refuses_the_connection_is_passed_over() -> None:
    seen: list[str] = []
    refused = client(httpx.ConnectError("connection refused"), seen)
    answering = client(httpx.Response(201, json={"id": "t-1"}), seen)

    answer = await upstream(refused, answering).call(
        "POST", "/internal/v1/tickets", workspace_id=uuid4(), json={"subject": "x"}
    )

    assert answer == {"id": "t-1"}
    assert [line.split(" ", 1)[1] for line in seen] == [
        "POST /internal/v1/tickets",
        "POST /internal/v1/tickets",
    ]


async def test_a_replica_lost_with_the_request_is_not_asked_again() -> None:
    """The request may have been applied: the client retries it (with its key), not the
    gateway."""
    seen: list[str] = []
    lost = client(httpx.RemoteProtocolError("server disconnected"), seen)
    other = client(httpx.Response(201, json={"id": "t-2"}), seen)

    with pytest.raises(ProblemError) as refused:
        await upstream(lost, other).call("POST", "/internal/v1/tickets", workspace_id=uuid4())

    problem = refused.value.problem
    assert (problem.status, problem.code) == (503, "upstream_unavailable")
    assert refused.value.headers == {"Retry-After": "2"}
    assert "same Idempotency-Key" in problem.detail
    assert len(seen) == 1


async def test_every_replica_refusing_is_upstream_unavailable() -> None:
    seen: list[str] = []
    replicas = [client(httpx.ConnectError("refused"), seen) for _ in range(2)]

    with pytest.raises(ProblemError) as refused:
        await upstream(*replicas).call("GET", "/internal/v1/tickets", workspace_id=uuid4())

    assert refused.value.problem.code == "upstream_unavailable"
    assert len(seen) == 2
    assert refused.value.problem.status == 503


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
