"""The fault suite's systems, load and checks, written once for the tests (`tests/faults`)
and the longer runs of `make bench SUITE=faults` (`tests/benchmarks/faults.py`).

A scenario starts the four services as real processes on real Kafka and a real database,
drives load through their public doors as clients do (dashboard creates and updates through
the gateway, widget requests through intake's widget API), does its fault meanwhile, and,
once the load is over, waits for the system to settle and checks what it holds:

* accepted = stored = activity entries: every create a client was told succeeded is one
  ticket in ticket-core (retries with the same `Idempotency-Key` or `request_id` made no
  second one, and there is no ticket nobody was told about); every event ticket-core
  recorded for those tickets is one activity entry, none twice, each ticket's sequence 1..n;
* every widget request ends `created` (with its ticket) or `rejected` with a reason;
* nothing was dead-lettered, nothing is left in an outbox or held back by activity-log.

The clients retry what a client should retry: a 503 after its `Retry-After`, a 502/504, a
429, a lost connection (a service killed under them) after a short backoff, always with the
same `Idempotency-Key` or `request_id`, so a retry never makes a second ticket. What they saw
(accepted, the answers they retried by status, the time until the system settled) is
`Figures`, which the tests show in pytest's summary and the benchmark prints.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import func, select

from services.activity_log.store import tables as activity_tables
from services.intake.store import tables as intake_tables
from services.local_run import SERVICE_NAMES, RunningSystem, ServicePlan, SystemPlan
from services.ticket_core.store import tables as ticket_core_tables
from shared.contracts.topics import ALL_TOPICS, TICKET_EVENTS
from shared.db import create_engine
from shared.dead_letters import list_dead_letters
from shared.kafka_admin import ensure_topics
from shared.kafka_security import aiokafka_security
from shared.settings import SystemSettings
from tests.e2e.conftest import (
    SERVICES_WITH_DATABASES,
    Assistant,
    Workspace,
    configure_assistant,
    database_urls,
    migrate,
    plan_on_free_ports,
)
from tests.faults import activity_log_fault_point as fault_point
from tests.support.credentials import strong_secrets
from tests.support.infrastructure import REPO_ROOT
from tests.support.kafka_reader import start_group_at_end, start_service_groups_at_end
from tests.support.own_servers import OwnBroker, OwnPostgres
from tests.support.waiting import eventually

# How long one client request may keep retrying before the client gives up on it (counted).
REQUEST_DEADLINE_SECONDS = 180.0
# How long the system may take to settle after the load before the scenario fails.
CONVERGE_TIMEOUT_SECONDS = 120.0
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
# How long a killed broker stays down before it is started again.
BROKER_DOWN_SECONDS = 3.0


# -- the system under fault ----------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One system's databases (migrated), environment and ports, before it is started."""

    kind: str  # "sqlite" or "postgres"
    plan: SystemPlan
    env: dict[str, str]
    kafka: str
    folder: Path

    @property
    def gateway(self) -> str:
        return self.gateways[0]

    @property
    def gateways(self) -> list[str]:
        """Each replica's gateway (one, unless the system runs replicas)."""
        return [f"http://127.0.0.1:{ports.gateway}" for ports in self.plan.replicas]

    @property
    def widgets(self) -> list[str]:
        """Each replica's widget API."""
        return [f"http://127.0.0.1:{ports.intake}" for ports in self.plan.replicas]


async def prepare(
    kind: str,
    folder: Path,
    kafka: str,
    postgres_admin_url: str | None = None,
    *,
    replicas: int = 1,
) -> Setup:
    """New databases on `kind` (on the cluster of `postgres_admin_url`), migrated; consumer
    groups of their own that start at the topics' ends (the broker may hold earlier tests'
    messages); limits of the widget API high enough for the load; `replicas` processes of
    every service."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    urls = await database_urls(kind, folder, postgres_admin_url)
    await ensure_topics(kafka, security=aiokafka_security(SystemSettings()))
    group = f"faults-{uuid4().hex[:8]}"
    await start_group_at_end(kafka, group, TICKET_EVENTS)
    await start_service_groups_at_end(kafka, group)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        **strong_secrets(),
        "HELPDESK_ENV": "production",
        **{f"{name}_CONSUMER_GROUP": group for name in SERVICES_WITH_DATABASES},
        **{f"{name}_DATABASE_URL": url for name, url in urls.items()},
        # The load comes from one address and one assistant; its requests are not abuse.
        "INTAKE_RATE_LIMIT_PER_ASSISTANT": "1000000",
        "INTAKE_RATE_LIMIT_PER_ADDRESS": "1000000",
        "INTAKE_RATE_LIMIT_READS_PER_ADDRESS": "1000000",
    }
    await asyncio.to_thread(migrate, env)
    return Setup(kind, plan_on_free_ports(urls, env, replicas=replicas), env, kafka, folder)


def service_of(module: str) -> str:
    """`services.ticket_core` → `ticket-core`."""
    return module.removeprefix("services.").replace("_", "-")


class SupervisedSystem:
    """The four services as `helpdesk run` runs them: its supervisor restarts a service that
    exits and says so on its console, which is kept here line by line."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        plan = self.setup.plan
        ports = {
            "gateway": plan.gateway_port,
            "ticket-core": plan.ticket_core_port,
            "activity-log": plan.activity_log_port,
            "intake": plan.intake_port,
            "intake-internal": plan.intake_internal_port,
        }
        command = [sys.executable, "-m", "services", "run"]
        command += ["--log-dir", str(self.setup.folder / "logs")]
        for option, port in ports.items():
            command += [f"--{option}-port", str(port)]
        self._process = subprocess.Popen(
            command,
            env={**os.environ, **self.setup.env},
            cwd=self.setup.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, args=(self._process,), daemon=True).start()
        self.wait_for_line("Help desk is running", timeout=120)
        wait_until_ready(plan.services())

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, text: str, *, after: int = 0, timeout: float = 90.0) -> int:
        """The index of the first console line from `after` on that contains `text`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(after, len(self.lines)):
                    if text in self.lines[index]:
                        return index
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line with {text!r} in {timeout}s: {self.lines}")
                self._changed.wait(left)

    def pids(self) -> dict[str, int]:
        """The running service processes, by service name."""
        assert self._process is not None
        listed = subprocess.run(
            ["ps", "-o", "pid=,args=", "--ppid", str(self._process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        found = {}
        for line in listed.splitlines():
            pid, _, args = line.strip().partition(" ")
            if "-m services." in args:
                found[service_of(args.split("-m ", 1)[1].split()[0])] = int(pid)
        return found

    def stop(self) -> None:
        """Ctrl-C, as the user stops it."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    async def __aenter__(self) -> SupervisedSystem:
        try:
            await asyncio.to_thread(self.start)
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await asyncio.to_thread(self.stop)


def wait_until_ready(services: list[ServicePlan], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(services)
    while waiting:
        try:
            if httpx.get(waiting[0].url("/readyz"), timeout=2.0).status_code == 200:
                waiting.pop(0)
                continue
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{waiting[0].name} not ready within {timeout}s")
        time.sleep(0.2)


# The test-only fault point: activity-log started from that module instead of its own kills
# itself once, right after storing an event.
FAULT_POINT_MODULE = fault_point.__name__


class PlanWithFaultPoint(SystemPlan):
    """A plan whose activity-log is the fault-point module, armed by `env`."""

    def services(self) -> list[ServicePlan]:
        return [
            replace(service, module=FAULT_POINT_MODULE)
            if service.service == "activity-log"
            else service
            for service in super().services()
        ]


@contextmanager
def system_with_fault_point(
    setup: Setup, *, kill_after_stored_events: int, marker: Path
) -> Iterator[RunningSystem]:
    """The four services started without a supervisor (the scenario restarts activity-log
    itself), activity-log armed to kill itself after storing that many events."""
    plan = PlanWithFaultPoint(
        **{name: getattr(setup.plan, name) for name in SystemPlan.__dataclass_fields__}
    )
    plan = replace(
        plan,
        extra_env={
            **plan.extra_env,
            fault_point.KILL_AFTER_ENV: str(kill_after_stored_events),
            fault_point.MARKER_ENV: str(marker),
            # `python -m tests...` finds the repository's tests wherever it runs.
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        },
    )
    with RunningSystem(plan, setup.folder / "logs").start() as running:
        yield running


async def create_team(setup: Setup) -> tuple[Workspace, Assistant]:
    """A workspace with its owner (`helpdesk create-workspace`) and an assistant whose
    widget may create tickets."""
    created = await asyncio.to_thread(
        subprocess.run,
        [
            *(sys.executable, "-m", "services", "create-workspace", "Faults"),
            *("--owner-email", f"owner-{uuid4().hex[:8]}@acme.io", "--json"),
        ],
        env={**os.environ, **setup.env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    team = Workspace.printed(created.stdout)
    async with httpx.AsyncClient(base_url=setup.gateway, timeout=30.0) as gateway:
        assistant = await configure_assistant(gateway, team)
    return team, assistant


# -- the clients ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """At least `tickets` dashboard creates and `widget_requests` widget requests; the load
    goes on until the fault is over too, so every fault happens under load. Every
    `update_every`th created ticket is also updated once (a second event for that ticket)."""

    tickets: int
    widget_requests: int
    concurrency: int = 8
    widget_concurrency: int = 3
    update_every: int = 4


@dataclass
class Tally:
    """What clients of one kind saw."""

    offered: int = 0
    accepted: int = 0
    retried: Counter[str] = field(default_factory=Counter)  # by status or connection error
    refused: Counter[int] = field(default_factory=Counter)  # final answers that were no success
    without_retry_after: int = 0  # 503s that did not say when to come back
    gave_up: int = 0

    def describe(self) -> str:
        retried = ", ".join(f"{why} x{n}" for why, n in sorted(self.retried.items())) or "none"
        text = f"{self.accepted}/{self.offered} accepted; retried: {retried}"
        if self.without_retry_after:
            text += f" ({self.without_retry_after} of the 503s without Retry-After)"
        if self.refused:
            text += f"; refused: {dict(self.refused)}"
        if self.gave_up:
            text += f"; gave up: {self.gave_up}"
        return text


@dataclass
class Clients:
    """Everything the clients were told."""

    creates: Tally = field(default_factory=Tally)
    updates: Tally = field(default_factory=Tally)
    widget: Tally = field(default_factory=Tally)
    ticket_ids: dict[str, str] = field(default_factory=dict)  # Idempotency-Key → ticket id
    updated_ids: set[str] = field(default_factory=set)
    request_ids: list[str] = field(default_factory=list)  # accepted widget requests
    seconds: float = 0.0

    @property
    def statuses_seen(self) -> set[str]:
        seen: set[str] = set()
        for tally in (self.creates, self.updates, self.widget):
            seen |= set(tally.retried) | {str(status) for status in tally.refused}
        return seen


class Progress:
    """How far the load is, for a fault that waits for its moment; and whether it is over."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.clients = Clients()
        self.fault_over = asyncio.Event()

    @property
    def fraction(self) -> float:
        done = self.clients.creates.accepted + self.clients.widget.accepted
        return done / max(1, self.load.tickets + self.load.widget_requests)

    async def reached(self, fraction: float) -> None:
        async def there() -> bool:
            return self.fraction >= fraction

        await eventually(
            there, timeout=REQUEST_DEADLINE_SECONDS, what=f"{fraction:.0%} of the load"
        )

    async def load_done_or(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the load's minimum was reached meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.fraction >= 1.0:
                return True
            await asyncio.sleep(0.1)
        return self.fraction >= 1.0


def rotated(addresses: list[str], by: int) -> list[str]:
    start = by % len(addresses)
    return addresses[start:] + addresses[:start]


def _backoff(attempt: int) -> float:
    return min(2.0, 0.1 * 2.0**attempt)


async def _send(
    client: httpx.AsyncClient,
    tally: Tally,
    method: str,
    addresses: list[str],
    path: str,
    **request: Any,
) -> httpx.Response | None:
    """The answer once it is no longer one to retry; None when it never came in time. The
    first of `addresses` (the replicas of a service, this client's own list) is asked; when
    its connection fails it goes to the end of the list, as a client moves to another
    replica and stays there."""
    deadline = time.monotonic() + REQUEST_DEADLINE_SECONDS
    attempt = 0
    while True:
        try:
            answer = await client.request(method, addresses[0] + path, **request)
        except httpx.TransportError as error:  # a service killed under us, or restarting
            tally.retried[type(error).__name__] += 1
            addresses.append(addresses.pop(0))
            pause = _backoff(attempt)
        else:
            concurrent = answer.status_code == 409 and _code(answer) == "concurrent_update"
            if answer.status_code not in RETRIED_STATUSES and not concurrent:
                return answer
            tally.retried[str(answer.status_code)] += 1
            retry_after = answer.headers.get("Retry-After", "")
            if answer.status_code == 503 and not retry_after:
                tally.without_retry_after += 1
            pause = float(retry_after) if retry_after.isdigit() else _backoff(attempt)
        attempt += 1
        if time.monotonic() + pause > deadline:
            tally.gave_up += 1
            return None
        await asyncio.sleep(pause)


def _code(answer: httpx.Response) -> str | None:
    try:
        code = answer.json().get("code")
    except ValueError:
        return None
    return code if isinstance(code, str) else None


def _accepted(tally: Tally, answer: httpx.Response | None, *ok: int) -> bool:
    if answer is None:
        return False
    if answer.status_code in ok:
        tally.accepted += 1
        return True
    tally.refused[answer.status_code] += 1
    return False


async def drive(setup: Setup, team: Workspace, assistant: Assistant, progress: Progress) -> Clients:
    """The load, until its minimum is reached and the fault is over."""
    load, clients = progress.load, progress.clients
    run = uuid4().hex[:8]
    tickets = iter(range(sys.maxsize))
    requests = iter(range(sys.maxsize))
    started = time.monotonic()

    def more(count: int, number: int) -> bool:
        return number < count or not progress.fault_over.is_set()

    async def create_tickets(client: httpx.AsyncClient, gateways: list[str]) -> None:
        while more(load.tickets, number := next(tickets)):
            key = f"faults-{run}-{number}"
            clients.creates.offered += 1
            created = await _send(
                client,
                clients.creates,
                "POST",
                gateways,
                "/api/v1/tickets",
                json={"subject": f"Fault suite ticket {number}", "priority": "normal"},
                headers={**team.auth, "Idempotency-Key": key},
            )
            if not _accepted(clients.creates, created, 200, 201):
                continue
            assert created is not None
            ticket_id = clients.ticket_ids[key] = created.json()["id"]
            if number % load.update_every == 0:
                clients.updates.offered += 1
                # The same value again (a retry) changes nothing and records no event.
                updated = await _send(
                    client,
                    clients.updates,
                    "PATCH",
                    gateways,
                    f"/api/v1/tickets/{ticket_id}",
                    json={"priority": "high"},
                    headers=team.auth,
                )
                if _accepted(clients.updates, updated, 200):
                    clients.updated_ids.add(ticket_id)

    async def send_widget_requests(client: httpx.AsyncClient, widgets: list[str]) -> None:
        while more(load.widget_requests, number := next(requests)):
            request_id = f"faults-{run}-w{number}"
            clients.widget.offered += 1
            body = {
                "request_id": request_id,
                "assistant_id": assistant.id,
                "conversation": {
                    "id": f"faults-{run}-c{number}",
                    "messages": [
                        {
                            "role": "visitor",
                            "text": f"Visitor {number} needs a person",
                            "sent_at": datetime.now(UTC).isoformat(),
                        }
                    ],
                },
            }
            answer = await _send(
                client,
                clients.widget,
                "POST",
                widgets,
                "/widget/v1/ticket-requests",
                json=body,
                headers={"X-Widget-Key": assistant.widget_key},
            )
            if _accepted(clients.widget, answer, 200, 202):
                clients.request_ids.append(request_id)

    limits = httpx.Limits(
        max_connections=load.concurrency + load.widget_concurrency,
        # Below the services' keep-alive timeout (uvicorn's 5 s, also httpx's default here):
        # a client that waited out `Retry-After: 5` would otherwise send its retry on a
        # connection the server is closing at that moment, and see it cut (ReadError).
        keepalive_expiry=2.0,
    )
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        await asyncio.gather(
            # The clients spread over the replicas (with one, all ask the one).
            *(
                create_tickets(client, rotated(setup.gateways, number))
                for number in range(load.concurrency)
            ),
            *(
                send_widget_requests(client, rotated(setup.widgets, number))
                for number in range(load.widget_concurrency)
            ),
        )
    clients.seconds = time.monotonic() - started
    return clients


# -- what the system holds -----------------------------------------------------------------


@dataclass
class Stored:
    tickets: dict[str, int]  # ticket id → its last event's sequence (ticket-core)
    entries: dict[str, list[int]]  # ticket id → sequences of its activity entries
    held_events: int  # activity-log: waiting for a gap to close, or conflicts
    requests: dict[str, tuple[str, str | None, str | None]]  # id → status, reason, ticket id
    outbox_pending: int  # ticket-core's and intake's, not yet published

    @property
    def events(self) -> int:
        return sum(self.tickets.values())

    @property
    def entry_count(self) -> int:
        return sum(len(sequences) for sequences in self.entries.values())

    @property
    def settled(self) -> bool:
        # A `ticket_core_timeout` is not final: ticket-core's late answer corrects it.
        undecided = [
            request_id
            for request_id, (status, reason, _) in self.requests.items()
            if status == "pending" or reason == "ticket_core_timeout"
        ]
        return (
            self.outbox_pending == 0
            and self.held_events == 0
            and not undecided
            and self.events == self.entry_count
        )


async def read_stored(setup: Setup, team: Workspace, assistant: Assistant) -> Stored:
    workspace = UUID(team.workspace_id)
    # In causal order, so that no later step is seen without its cause: the tickets intake
    # was told of exist in ticket-core, the events activity-log applied are ticket-core's.
    async with _reading(setup, "INTAKE") as intake:
        table = intake_tables.ticket_requests
        requests = {
            request_id: (status, reason, str(ticket_id) if ticket_id else None)
            for request_id, status, reason, ticket_id in await intake.execute(
                select(table.c.request_id, table.c.status, table.c.reason, table.c.ticket_id).where(
                    table.c.assistant_id == assistant.id
                )
            )
        }
        intake_pending = await intake.scalar(
            select(func.count())
            .select_from(intake_tables.outbox)
            .where(intake_tables.outbox.c.published_at.is_(None))
        )
    async with _reading(setup, "TICKET_CORE") as core:
        tickets = ticket_core_tables.tickets
        rows = await core.execute(
            select(tickets.c.id, tickets.c.last_sequence).where(tickets.c.workspace_id == workspace)
        )
        stored_tickets = {str(ticket_id): sequence for ticket_id, sequence in rows}
        core_pending = await core.scalar(
            select(func.count())
            .select_from(ticket_core_tables.outbox)
            .where(ticket_core_tables.outbox.c.published_at.is_(None))
        )
    async with _reading(setup, "ACTIVITY_LOG") as activity:
        entries_table = activity_tables.activity_entries
        entries: dict[str, list[int]] = {}
        for ticket_id, sequence in await activity.execute(
            select(entries_table.c.ticket_id, entries_table.c.sequence).where(
                entries_table.c.workspace_id == workspace
            )
        ):
            entries.setdefault(ticket_id, []).append(sequence)
        held = await activity.scalar(select(func.count()).select_from(activity_tables.held_events))
    # Entries of other subjects (the workspace's members) are not the tickets' history.
    entries = {subject: found for subject, found in entries.items() if subject in stored_tickets}
    return Stored(
        stored_tickets,
        entries,
        int(held or 0),
        requests,
        int(core_pending or 0) + int(intake_pending or 0),
    )


class _reading:
    """A read-only connection to one service's database, closed with its engine."""

    def __init__(self, setup: Setup, service: str) -> None:
        self._engine = create_engine(setup.env[f"{service}_DATABASE_URL"], read_only=True)

    async def __aenter__(self) -> Any:
        self._connection = await self._engine.connect()
        return self._connection

    async def __aexit__(self, *_exc: object) -> None:
        await self._connection.close()
        await self._engine.dispose()


async def dead_letters(kafka: str) -> set[tuple[str, int, int, str]]:
    """Every dead letter on the broker: (topic, partition, offset, reason)."""
    found = set()
    security = aiokafka_security(SystemSettings())
    for topic in ALL_TOPICS:
        for letter in await list_dead_letters(kafka, topic.name, security=security):
            found.add((letter.topic, letter.partition, letter.offset, letter.reason))
    return found


def problems(clients: Clients, stored: Stored, new_dead_letters: set[Any]) -> list[str]:
    """Every invariant the stored state breaks, in words; empty when all hold."""
    found: list[str] = []
    for what, tally in (
        ("creates", clients.creates),
        ("updates", clients.updates),
        ("widget requests", clients.widget),
    ):
        if tally.accepted != tally.offered:
            found.append(f"{what}: {tally.describe()}")
    if "500" in clients.statuses_seen:
        found.append("a client was answered 500")
    created = set(clients.ticket_ids.values())
    if len(created) != clients.creates.accepted:
        found.append(f"{clients.creates.accepted} creates accepted, {len(created)} tickets")
    from_widget = set()
    for request_id in clients.request_ids:
        status, reason, ticket_id = stored.requests.get(request_id, ("missing", None, None))
        if status == "created" and ticket_id is not None:
            from_widget.add(ticket_id)
        elif status != "rejected" or not reason:
            found.append(f"widget request {request_id} ended {status} ({reason})")
    if set(stored.requests) != set(clients.request_ids):
        found.append(
            f"{len(stored.requests)} widget requests stored, {len(clients.request_ids)} accepted"
        )
    if set(stored.tickets) != created | from_widget:
        found.append(
            f"{len(stored.tickets)} tickets stored, {len(created | from_widget)} accepted "
            f"({len(set(stored.tickets) - created - from_widget)} nobody was told about, "
            f"{len((created | from_widget) - set(stored.tickets))} missing)"
        )
    for ticket_id in created:
        expected = 2 if ticket_id in clients.updated_ids else 1
        if stored.tickets.get(ticket_id, expected) != expected:
            found.append(
                f"ticket {ticket_id} has {stored.tickets[ticket_id]} events, not {expected}"
            )
    broken = [
        ticket_id
        for ticket_id, last in stored.tickets.items()
        if sorted(stored.entries.get(ticket_id, [])) != list(range(1, last + 1))
    ]
    if broken:
        example = broken[0]
        found.append(
            f"{len(broken)} tickets' activity is not their sequence 1..n, e.g. {example}: "
            f"{sorted(stored.entries.get(example, []))} for {stored.tickets[example]} events"
        )
    if stored.held_events:
        found.append(f"activity-log holds {stored.held_events} events back")
    if stored.outbox_pending:
        found.append(f"{stored.outbox_pending} outbox rows unpublished")
    for topic, partition, offset, reason in sorted(new_dead_letters):
        found.append(f"dead letter on {topic} [{partition}@{offset}]: {reason}")
    return found


# -- a scenario ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What goes wrong during the load: `act` waits for its moment, does it, and returns
    what it did, in words."""

    name: str
    act: Callable[[Progress], Awaitable[list[str]]]


@dataclass
class Figures:
    """What one scenario's clients saw and what the system held after it."""

    scenario: str
    kind: str
    clients: Clients
    stored: Stored
    converge_seconds: float
    seconds: float
    fault_notes: list[str]
    problems: list[str]

    def lines(self) -> list[str]:
        clients, stored = self.clients, self.stored
        outcomes = Counter(
            status if status != "rejected" else f"rejected ({reason})"
            for status, reason, _ in stored.requests.values()
        )
        writes = clients.creates.accepted + clients.updates.accepted + clients.widget.accepted
        return [
            f"{self.scenario} [{self.kind}]: {self.seconds:.0f} s in all",
            *(f"  fault:            {note}" for note in self.fault_notes),
            f"  creates:          {clients.creates.describe()}",
            f"  updates:          {clients.updates.describe()}",
            f"  widget requests:  {clients.widget.describe()}; ended "
            + ", ".join(f"{what} {n}" for what, n in sorted(outcomes.items())),
            f"  load:             {clients.seconds:.1f} s "
            f"({writes / max(clients.seconds, 0.001):.0f} accepted writes/s); "
            f"converged {self.converge_seconds:.1f} s after it",
            f"  stored:           {len(stored.tickets)} tickets, {stored.events} events = "
            f"{stored.entry_count} activity entries, each ticket 1..n; "
            f"{'no problem' if not self.problems else f'{len(self.problems)} PROBLEMS'}",
            *(f"  PROBLEM: {problem}" for problem in self.problems),
        ]


async def run_scenario(setup: Setup, load: Load, fault: Fault) -> Figures:
    """Drive `load` while `fault` does its part, wait for the system to settle, check it."""
    started = time.monotonic()
    team, assistant = await create_team(setup)
    letters_before = await dead_letters(setup.kafka)
    progress = Progress(load)

    async def fault_then_release() -> list[str]:
        try:
            return await fault.act(progress)
        finally:
            progress.fault_over.set()

    fault_task = asyncio.create_task(fault_then_release())
    clients = await drive(setup, team, assistant, progress)
    notes = await fault_task
    load_over = time.monotonic()

    async def settled() -> Stored | None:
        stored = await read_stored(setup, team, assistant)
        return stored if stored.settled else None

    try:
        stored = await eventually(
            settled, timeout=CONVERGE_TIMEOUT_SECONDS, what="the system to settle"
        )
    except AssertionError:
        stored = await read_stored(setup, team, assistant)  # the checks below say what is wrong
    converge_seconds = time.monotonic() - load_over
    new_letters = await dead_letters(setup.kafka) - letters_before
    return Figures(
        scenario=fault.name,
        kind=setup.kind,
        clients=clients,
        stored=stored,
        converge_seconds=converge_seconds,
        seconds=time.monotonic() - started,
        fault_notes=notes,
        problems=problems(clients, stored, new_letters),
    )


def restarts(system: SupervisedSystem, pids_before: dict[str, int]) -> list[str]:
    """For a fault no service should exit of: each exit `helpdesk run` reported."""
    found = [f"helpdesk run: {line}" for line in system.lines if " exited " in line]
    if not found and system.pids() != pids_before:
        found.append(f"service processes changed: {pids_before} → {system.pids()}")
    return found


def only_told_to_come_back(clients: Clients) -> list[str]:
    """For a database outage: every answer a client retried was a 503 with `Retry-After`."""
    found = [f"a client saw {seen}" for seen in sorted(clients.statuses_seen - {"503"})]
    without = sum(t.without_retry_after for t in (clients.creates, clients.updates, clients.widget))
    if without:
        found.append(f"{without} answers 503 without Retry-After")
    return found


# -- the scenarios, each with the system it needs ------------------------------------------


async def the_broker_killed(
    kind: str, folder: Path, postgres_admin_url: str | None, load: Load, *, every_seconds: float = 0
) -> Figures:
    """On a broker of its own, SIGKILLed under load (once, or every `every_seconds`) and
    started again; no service may exit meanwhile."""
    broker = OwnBroker(folder / "kafka")
    await asyncio.to_thread(broker.run, "start")
    try:
        setup = await prepare(kind, folder / "system", broker.bootstrap, postgres_admin_url)
        async with SupervisedSystem(setup) as system:
            before = await asyncio.to_thread(system.pids)
            figures = await run_scenario(
                setup, load, broker_killed(broker, every_seconds=every_seconds)
            )
            figures.problems += await asyncio.to_thread(restarts, system, before)
    finally:
        await asyncio.to_thread(broker.run, "stop")
    return figures


async def each_service_killed(
    kind: str, folder: Path, kafka: str, postgres_admin_url: str | None, load: Load
) -> Figures:
    setup = await prepare(kind, folder, kafka, postgres_admin_url)
    async with SupervisedSystem(setup) as system:
        return await run_scenario(setup, load, services_killed(system))


async def postgres_restarted_under_load(
    folder: Path, kafka: str, load: Load, *, every_seconds: float = 0
) -> Figures:
    """On a PostgreSQL cluster of its own (never the one other tests share), restarted with
    `-m immediate` under load: clients are told 503 with `Retry-After`, nothing else, and
    the services recover without a restart."""
    # Durable: with pg.sh's speed settings an immediate restart loses the last commits
    # (synchronous_commit off), which would be the cluster's loss, not the services'.
    cluster = OwnPostgres(durable=True)
    await asyncio.to_thread(cluster.run, "start")
    try:
        setup = await prepare("postgres", folder, kafka, cluster.admin_url)
        async with SupervisedSystem(setup) as system:
            before = await asyncio.to_thread(system.pids)
            figures = await run_scenario(
                setup, load, postgres_restarted(cluster, every_seconds=every_seconds)
            )
            figures.problems += await asyncio.to_thread(restarts, system, before)
        figures.problems += only_told_to_come_back(figures.clients)
    finally:
        await asyncio.to_thread(cluster.run, "stop", "--purge")
    return figures


async def activity_log_killed_before_commit(
    kind: str,
    folder: Path,
    kafka: str,
    postgres_admin_url: str | None,
    load: Load,
    *,
    kill_after_stored_events: int,
) -> Figures:
    setup = await prepare(kind, folder, kafka, postgres_admin_url)
    marker = folder / "fault-point-fired"
    with system_with_fault_point(
        setup, kill_after_stored_events=kill_after_stored_events, marker=marker
    ) as running:
        return await run_scenario(setup, load, activity_log_killed_at_fault_point(running, marker))


async def one_replica_of_each_killed(
    folder: Path, kafka: str, postgres_admin_url: str, load: Load
) -> Figures:
    """Two processes of every service (on PostgreSQL: on SQLite one process writes a
    file), started without a supervisor, so that a killed replica stays dead and the other
    one has to take over its share: its partitions, the outbox relay, its clients."""
    setup = await prepare("postgres", folder, kafka, postgres_admin_url, replicas=2)
    running = RunningSystem(setup.plan, setup.folder / "logs")
    await asyncio.to_thread(running.start)
    try:
        return await run_scenario(setup, load, replicas_killed(running))
    finally:
        await asyncio.to_thread(running.stop)


# -- the faults ----------------------------------------------------------------------------


def broker_killed(broker: OwnBroker, *, at: float = 0.25, every_seconds: float = 0) -> Fault:
    """SIGKILL the broker once `at` of the load is done (or every `every_seconds` while the
    load runs), leave it down a few seconds, start it again on the same data."""

    async def act(progress: Progress) -> list[str]:
        notes: list[str] = []
        if every_seconds:
            while not await progress.load_done_or(every_seconds):
                notes.append(await kill_and_restart(progress))
        else:
            await progress.reached(at)
            notes.append(await kill_and_restart(progress))
        return notes

    async def kill_and_restart(progress: Progress) -> str:
        at_fraction = progress.fraction
        killed = time.monotonic()
        await asyncio.to_thread(broker.kill)
        await asyncio.sleep(BROKER_DOWN_SECONDS)
        await asyncio.to_thread(broker.run, "start")
        return (
            f"broker SIGKILLed at {at_fraction:.0%} of the load, "
            f"answering again {time.monotonic() - killed:.1f} s later"
        )

    return Fault("the broker SIGKILLed and restarted", act)


def services_killed(system: SupervisedSystem) -> Fault:
    """SIGKILL each service in turn (at 10 %, 30 %, 50 %, 70 % of the load), each once the
    one before is back; `helpdesk run` restarts them."""

    async def act(progress: Progress) -> list[str]:
        notes = []
        for number, name in enumerate(SERVICE_NAMES):
            await progress.reached(0.1 + 0.2 * number)
            pid = (await asyncio.to_thread(system.pids))[name]
            seen = len(system.lines)
            at_fraction = progress.fraction
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(system.wait_for_line, f"{name} exited (signal 9)", after=seen)
            await asyncio.to_thread(system.wait_for_line, f"{name} is ready again", after=seen)
            back = time.monotonic() - killed
            notes.append(f"{name} killed at {at_fraction:.0%}, ready again {back:.1f} s later")
        return notes

    return Fault("each service SIGKILLed once, restarted by helpdesk run", act)


def postgres_restarted(cluster: OwnPostgres, *, at: float = 0.3, every_seconds: float = 0) -> Fault:
    """`pg_ctl restart -m immediate` on the services' cluster once `at` of the load is done
    (or every `every_seconds` while the load runs)."""

    async def act(progress: Progress) -> list[str]:
        notes: list[str] = []
        if every_seconds:
            while not await progress.load_done_or(every_seconds):
                notes.append(await restart(progress))
        else:
            await progress.reached(at)
            notes.append(await restart(progress))
        return notes

    async def restart(progress: Progress) -> str:
        at_fraction = progress.fraction
        began = time.monotonic()
        await asyncio.to_thread(cluster.run, "restart", "--immediate")
        return (
            f"PostgreSQL restarted (-m immediate) at {at_fraction:.0%} of the load, "
            f"answering again {time.monotonic() - began:.1f} s later"
        )

    return Fault("PostgreSQL restarted -m immediate", act)


def activity_log_killed_at_fault_point(running: RunningSystem, marker: Path) -> Fault:
    """Wait for activity-log to kill itself at the fault point (it was armed when started:
    `system_with_fault_point`), then start it again."""

    async def act(progress: Progress) -> list[str]:
        process = running.processes["activity-log"]

        async def exited() -> bool:
            return process.poll() is not None

        await eventually(exited, timeout=CONVERGE_TIMEOUT_SECONDS, what="the fault point")
        assert process.returncode == -signal.SIGKILL, process.returncode
        event_id = await asyncio.to_thread(marker.read_text)
        at_fraction = progress.fraction
        began = time.monotonic()
        await asyncio.to_thread(running.start_service, "activity-log")
        return [
            f"activity-log killed itself at {at_fraction:.0%} of the load, after storing "
            f"event {event_id} and before committing its offset; started again, ready "
            f"{time.monotonic() - began:.1f} s later"
        ]

    return Fault("activity-log killed after storing, before committing", act)


def replicas_killed(running: RunningSystem) -> Fault:
    """SIGKILL the first replica of each service in turn (at 10 %, 30 %, 50 %, 70 % of the
    load); the second goes on alone."""

    async def act(progress: Progress) -> list[str]:
        notes = []
        for number, service in enumerate(SERVICE_NAMES):
            await progress.reached(0.1 + 0.2 * number)
            killed, survivor = running.names_of(service)[:2]
            process = running.processes[killed]
            at_fraction = progress.fraction
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            notes.append(f"{killed} killed at {at_fraction:.0%}; {survivor} goes on alone")
        return notes

    return Fault("one replica of each service killed while two run", act)
