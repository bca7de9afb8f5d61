"""`helpdesk run` supervises, as a user runs it: activity-log SIGKILLed is started again with
one line saying so, the gateway keeps answering meanwhile, and a ticket created while
activity-log was down still reaches the activity log. Ctrl-C (SIGINT) then stops every
process `helpdesk run` started."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from shared.contracts.topics import TICKET_EVENTS
from tests.e2e.conftest import SERVICES_WITH_DATABASES, Workspace, free_port, history
from tests.support.credentials import strong_secrets
from tests.support.kafka_reader import start_group_at_end, start_service_groups_at_end


class Console:
    """`helpdesk run`'s output, line by line, as the user's terminal shows it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                self.lines.put(line.rstrip("\n"))

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout}s; saw {self.seen}")


def children(pid: int) -> dict[str, int]:
    """The processes `pid` started, by service module (`services.activity_log`, ...)."""
    listed = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    found = {}
    for line in listed.splitlines():
        child, _, args = line.strip().partition(" ")
        if "-m services." in args:
            found[args.split("-m ", 1)[1].split()[0]] = int(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


OWNER = "owner@acme.io"


def create_workspace(env: dict[str, str]) -> Workspace:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "services",
            "create-workspace",
            "Acme",
            "--owner-email",
            "owner@acme.io",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    return Workspace.printed(created.stdout)


@pytest.fixture
def run_environment(kafka: str, tmp_path: Path) -> dict[str, str]:
    group = f"e2e-run-{uuid4().hex[:8]}"
    asyncio.run(start_group_at_end(kafka, group, TICKET_EVENTS))
    asyncio.run(start_service_groups_at_end(kafka, group))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        **strong_secrets(),
        "HELPDESK_ENV": "production",
        **{f"{name}_CONSUMER_GROUP": group for name in SERVICES_WITH_DATABASES},
        **{
            f"{name}_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / name.lower()}.db"
            for name in SERVICES_WITH_DATABASES
        },
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "services", "migrate"], env=env, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr
    return env


def _with_sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture
def helpdesk_run(
    run_environment: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    gateway_port = free_port()
    command = [sys.executable, "-m", "services", "run", "--log-dir", str(tmp_path / "logs")]
    for option in ("gateway", "ticket-core", "activity-log", "intake", "intake-internal"):
        port = gateway_port if option == "gateway" else free_port()
        command += [f"--{option}-port", str(port)]
    process = subprocess.Popen(
        command,
        env=run_environment,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As a script's background job starts it: SIGINT ignored, which the process inherits.
        # Ctrl-C must stop it all the same (it once did not, and its services outlived it).
        preexec_fn=_with_sigint_ignored,
    )
    try:
        yield process, gateway_port
    finally:
        if process.poll() is None:  # the test failed before its Ctrl-C: stop it the same way
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


async def test_a_killed_service_is_restarted_and_ctrl_c_leaves_nothing_running(
    helpdesk_run: tuple[subprocess.Popen[str], int], run_environment: dict[str, str]
) -> None:
    process, gateway_port = helpdesk_run
    console = Console(process)
    await asyncio.to_thread(console.wait_for, "Help desk is running")
    team = await asyncio.to_thread(create_workspace, run_environment)
    started = children(process.pid)
    assert set(started) == {f"services.{name.lower()}" for name in SERVICES_WITH_DATABASES} | {
        "services.gateway"
    }

    os.kill(started["services.activity_log"], signal.SIGKILL)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway_port}", timeout=15.0
    ) as gateway:
        # While activity-log is down the gateway answers and ticket-core takes the ticket.
        answer = await gateway.post(
            "/api/v1/tickets",
            json={"subject": "Made while activity-log was away"},
            headers=team.auth,
        )
        assert answer.status_code == 201, answer.text
        ticket = answer.json()

        line = await asyncio.to_thread(console.wait_for, "activity-log exited")
        assert line == "activity-log exited (signal 9); restarting in 1 s"
        await asyncio.to_thread(console.wait_for, "activity-log is ready again")
        restarted = children(process.pid)
        assert restarted["services.activity_log"] != started["services.activity_log"]
        assert {name: pid for name, pid in restarted.items() if "activity" not in name} == {
            name: pid for name, pid in started.items() if "activity" not in name
        }

        [entry] = await history(gateway, ticket["id"], team.auth, 1)
        assert entry["type"] == "ticket.created"

    process.send_signal(signal.SIGINT)
    await asyncio.to_thread(console.wait_for, "all services stopped")
    assert await asyncio.to_thread(process.wait, 30) == 0
    assert [name for name, pid in restarted.items() if alive(pid)] == []
