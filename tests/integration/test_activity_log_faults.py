"""activity-log under faults, against the real broker and both databases: stopped while
events are produced, its database away for 30 s with a backlog, two replicas in one group,
event types and versions it does not know."""

import asyncio
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped]
import pytest
import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from services.activity_log.bootstrap import MIGRATIONS_DIR, ActivityLog
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store import tables
from shared import broker as broker_module
from shared.broker import stop_broker
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from shared.dead_letters import list_dead_letters
from shared.migrations import upgrade_to_head
from tests.e2e.conftest import free_port
from tests.integration.support import ticket_event
from tests.support.infrastructure import POSTGRES_SCRIPT
from tests.support.kafka_reader import start_group_at_end
from tests.support.waiting import eventually


@pytest.fixture
async def group(kafka: str) -> str:
    name = f"activity-faults-{uuid4()}"
    await start_group_at_end(kafka, name, TICKET_EVENTS)
    return name


def replica(kafka: str, database_url: str, group: str) -> ActivityLog:
    return bootstrap_activity_log(
        ActivityLogSettings(
            database_url=database_url, kafka_bootstrap_servers=kafka, consumer_group=group
        )
    )


def events_for(
    workspace: UUID, tickets: int, per_ticket: int, first: int = 1
) -> list[EventEnvelope]:
    subjects = [str(uuid4()) for _ in range(tickets)]
    return [
        ticket_event(workspace, subject, n)
        for subject in subjects
        for n in range(first, first + per_ticket)
    ]


async def publish(producer: AIOKafkaProducer, events: list[EventEnvelope]) -> None:
    for event in events:
        await producer.send(
            "ticket.events.v1", event.model_dump_json().encode(), key=event.subject.encode()
        )
    await producer.flush()


async def stored(service: ActivityLog, workspace: UUID) -> tuple[int, int]:
    """(entries, distinct event ids) of this workspace."""
    entries = tables.activity_entries
    async with service.engine.connect() as connection:
        row = (
            await connection.execute(
                select(func.count(), func.count(func.distinct(entries.c.event_id))).where(
                    entries.c.workspace_id == workspace
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_two_replicas_in_one_group_store_every_event_exactly_once(
    kafka: str, activity_log_url: str, group: str, producer: AIOKafkaProducer
) -> None:
    workspace = uuid4()
    first, second = replica(kafka, activity_log_url, group), replica(kafka, activity_log_url, group)
    await first.broker.start()
    await second.broker.start()
    try:
        events = events_for(workspace, tickets=30, per_ticket=6)
        await publish(producer, [*events, *events[::7]])  # with some redeliveries

        async def all_in() -> bool:
            return (await stored(first, workspace))[0] >= len(events)

        await eventually(all_in, timeout=60, what="every event stored")
    finally:
        await stop_broker(first.broker)
        await stop_broker(second.broker)
    assert await stored(first, workspace) == (len(events), len(events))
    await first.engine.dispose()
    await second.engine.dispose()


async def test_events_produced_while_activity_log_is_down_are_stored_after_restart(
    kafka: str, activity_log_url: str, group: str, producer: AIOKafkaProducer
) -> None:
    workspace = uuid4()
    before = events_for(workspace, tickets=10, per_ticket=3)
    service = replica(kafka, activity_log_url, group)
    await service.broker.start()
    await publish(producer, before)

    async def first_part() -> bool:
        return (await stored(service, workspace))[0] >= len(before)

    await eventually(first_part, what="the events before the stop")
    await stop_broker(service.broker)
    await service.engine.dispose()

    during = events_for(workspace, tickets=10, per_ticket=3)
    await publish(producer, [*during, *before[:5]])  # and a few old ones again
    restarted = replica(kafka, activity_log_url, group)
    await restarted.broker.start()
    try:

        async def everything() -> bool:
            return (await stored(restarted, workspace))[0] >= len(before) + len(during)

        await eventually(everything, what="the events produced while it was down")
    finally:
        await stop_broker(restarted.broker)
    total = len(before) + len(during)
    assert await stored(restarted, workspace) == (total, total)
    await restarted.engine.dispose()


async def test_unknown_types_and_newer_schema_versions_are_kept_not_crashed_on(
    kafka: str, activity_log_url: str, group: str, producer: AIOKafkaProducer
) -> None:
    workspace = uuid4()
    subject = str(uuid4())
    future = [
        EventEnvelope(
            type="ticket.created",
            source="ticket-core",
            workspace_id=workspace,
            subject=subject,
            sequence=1,
            schema_version=3,
            actor=Actor(type="member", id="m-1"),
            data={"changes": {"subject": {"from": None, "to": "x"}}, "added_later": {"a": 1}},
        ),
        EventEnvelope(
            type="ticket.teleported",
            source="ticket-core",
            workspace_id=workspace,
            subject=subject,
            sequence=2,
            actor=Actor.system("future"),
            data={"where": "moon"},
        ),
    ]
    service = replica(kafka, activity_log_url, group)
    await service.broker.start()
    try:
        await publish(producer, future)

        async def both() -> bool:
            return (await stored(service, workspace))[0] == 2

        await eventually(both, what="both future events kept")
    finally:
        await stop_broker(service.broker)
        await service.engine.dispose()


OUTAGE_SECONDS = 30.0
# SQLite itself waits up to 30 s for a lock (busy_timeout, shared/db.py), so a 30 s lock is
# absorbed by that wait and the consumer never sees a failure. Held longer, the consumer's
# writes fail with "database is locked" and it has to wait the rest out.
SQLITE_LOCK_SECONDS = 45.0
# A PostgreSQL cluster of this test's own, which it stops and starts (never the shared one),
# on a port free now: a fixed one (it was 55532) lies in the kernel's ephemeral range, where
# another test's server or client took it once in CI.
OUTAGE_PG_PORT = os.environ.get("HELPDESK_TEST_OUTAGE_PG_PORT") or str(free_port())


@dataclass
class OutageDatabase:
    url: str
    how: str
    # Makes the database unavailable for `seconds`, then available again; returns when the
    # database is away (the outage then runs in the background until `ended` is set).
    begin_outage: Callable[[], Awaitable[None]]
    ended: asyncio.Event


def _pg(command: str) -> str:
    env = {
        **os.environ,
        "PG_PORT": OUTAGE_PG_PORT,
        "PG_DATA_DIR": f"/tmp/helpdesk-outage-pg-{OUTAGE_PG_PORT}",
    }
    done = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), command],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.fixture
async def outage_database(db_kind: str, tmp_path: Path) -> AsyncIterator[OutageDatabase]:
    ended = asyncio.Event()
    if db_kind == "sqlite":
        path = tmp_path / "activity-log.db"
        url = f"sqlite+aiosqlite:///{path}"

        async def lock_exclusively() -> None:
            # Another connection takes the write lock and holds it: every write of the
            # consumer waits (SQLite's busy timeout) and then fails with "database is locked".
            locked = threading.Event()

            def hold() -> None:
                connection = sqlite3.connect(path, timeout=60, isolation_level=None)
                try:
                    connection.execute("BEGIN EXCLUSIVE")
                    locked.set()
                    time.sleep(SQLITE_LOCK_SECONDS)
                    connection.execute("ROLLBACK")
                finally:
                    connection.close()

            holder = asyncio.get_running_loop().run_in_executor(None, hold)
            holder.add_done_callback(lambda _: ended.set())
            await asyncio.to_thread(locked.wait, 60)

        await upgrade_to_head(MIGRATIONS_DIR, url)
        yield OutageDatabase(
            url, "BEGIN EXCLUSIVE held by another connection", lock_exclusively, ended
        )
        return

    admin_url = await asyncio.to_thread(_pg, "start")
    database = f"t_outage_{uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()
    rendered = (
        make_url(admin_url)
        .set(drivername="postgresql+asyncpg", database=database)
        .render_as_string(hide_password=False)
    )
    await upgrade_to_head(MIGRATIONS_DIR, rendered)

    async def stop_server() -> None:
        await asyncio.to_thread(_pg, "stop")

        async def restart_later() -> None:
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(_pg, "start")
            ended.set()

        background.append(asyncio.create_task(restart_later()))

    background: list[asyncio.Task[None]] = []
    try:
        yield OutageDatabase(
            rendered, "the PostgreSQL server stopped (pg_ctl stop -m fast)", stop_server, ended
        )
    finally:
        for task in background:
            await task
        await asyncio.to_thread(_pg, "stop")


async def applied_per_subject(service: ActivityLog, workspace: UUID) -> dict[str, list[int]]:
    entries = tables.activity_entries
    async with service.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(entries.c.ticket_id, entries.c.sequence)
                .where(entries.c.workspace_id == workspace)
                .order_by(entries.c.ticket_id, entries.c.sequence)
            )
        ).all()
    applied: dict[str, list[int]] = {}
    for ticket_id, sequence in rows:
        applied.setdefault(ticket_id, []).append(sequence)
    return applied


@pytest.mark.timeout(180)
async def test_the_database_away_for_30_seconds_with_a_backlog_loses_and_dead_letters_nothing(
    kafka: str,
    outage_database: OutageDatabase,
    group: str,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Shorter than the outage: the consumer, waiting inside its handler, stops polling for
    # longer than this, so aiokafka takes it out of the group; it must come back by itself.
    monkeypatch.setattr(broker_module, "MAX_POLL_INTERVAL_MS", 10_000)
    workspace = uuid4()
    tickets, before_per_ticket, during_per_ticket = 50, 20, 10
    backlog = events_for(workspace, tickets=tickets, per_ticket=before_per_ticket)
    subjects = list(dict.fromkeys(event.subject for event in backlog))
    during = [
        ticket_event(workspace, subject, n)
        for subject in subjects
        for n in range(before_per_ticket + 1, before_per_ticket + during_per_ticket + 1)
    ]
    expected = len(backlog) + len(during)
    await publish(producer, backlog)
    service = replica(kafka, outage_database.url, group)
    with structlog.testing.capture_logs() as logs:
        await service.broker.start()
        try:

            async def consumer_is_busy() -> bool:
                return (await stored(service, workspace))[0] >= 20

            await eventually(consumer_is_busy, what="the consumer working on its backlog")
            await outage_database.begin_outage()
            outage_began = time.monotonic()
            await publish(producer, during)  # more events arrive while it is away
            await outage_database.ended.wait()
            back = time.monotonic()

            async def everything() -> bool:
                return (await stored(service, workspace))[0] >= expected

            await eventually(everything, timeout=90, what="every event after the outage")
            drained = time.monotonic()
        finally:
            await stop_broker(service.broker)
    try:
        assert await stored(service, workspace) == (expected, expected)
        applied = await applied_per_subject(service, workspace)
        complete = list(range(1, before_per_ticket + during_per_ticket + 1))
        assert applied == {subject: complete for subject in subjects}
        async with service.engine.connect() as connection:
            held = await connection.scalar(
                select(func.count())
                .select_from(tables.held_events)
                .where(tables.held_events.c.subject.in_(subjects))
            )
        assert held == 0
    finally:
        await service.engine.dispose()
    ids = {str(event.id) for event in [*backlog, *during]}
    dead = [
        letter
        for letter in await list_dead_letters(kafka, TICKET_EVENTS.name)
        if letter.event_id in ids
    ]
    assert dead == []
    waits = [entry for entry in logs if entry["event"] == "waiting_for_dependency"]
    dead_lettered = [entry for entry in logs if entry["event"] == "message_dead_lettered"]
    assert dead_lettered == []
    assert waits, "the consumer never met the outage"
    assert {entry["dependency"] for entry in waits} <= {"database", "network"}
    print(
        f"\n[{outage_database.how}] {expected} events, away {back - outage_began:.1f}s, "
        f"{len(waits)} waits logged (max attempt {max((w['attempt'] for w in waits), default=0)}), "
        f"drained {drained - back:.1f}s after it came back"
    )
