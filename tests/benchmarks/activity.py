"""activity-log's consume rate (one and two replicas in one group) on SQLite and PostgreSQL,
each beside a raw bulk insert of the same entry rows through the same driver into the same
kind of database in the same run; a raw aiokafka consumer reading the same messages; and the
rebuild rate, against its target (1,000,000 events in 2 minutes).

All consumers read the same backlog of `--events` events published to `ticket.events.v1`
just before; each replica run stores into a fresh database. The raw insert writes the backlog's
entry rows (prepared beforehand, so only the driver and the database are measured) in
transactions of `BATCH_MAX_RECORDS` rows with the driver's executemany, the values already
converted to what the driver takes. The rebuild replays a
dedicated copy topic (same partitions) into a fresh database through the rebuild command's
code. Each activity-log replica runs in a process of its own, as deployed, and reports its
peak RSS; the rebuild's RSS is this process's (which holds the backlog too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import aiosqlite
import asyncpg  # type: ignore[import-untyped]
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import Table, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.activity_log.bootstrap import MIGRATIONS_DIR
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.domain.entries import ActivityEntry
from services.activity_log.entrypoints.rebuild import RebuildReport, rebuild
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store import tables
from shared.broker import BATCH_MAX_RECORDS, stop_broker
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import TICKET_EVENTS, Topic
from shared.db import create_engine, create_session_factory
from shared.inbox import prune_inbox
from shared.kafka_admin import ensure_topics
from shared.migrations import upgrade_to_head
from tests.benchmarks.pipeline import postgres_database
from tests.support.kafka_reader import start_group_at_end

PER_TICKET = 10
CONSUME_TARGET_PER_SECOND = 10_000
REBUILD_TARGET_EVENTS = 1_000_000
REBUILD_TARGET_SECONDS = 120.0
ENTRY_COLUMNS = [column.name for column in tables.activity_entries.columns]


def _events(count: int) -> list[EventEnvelope]:
    workspace = uuid4()
    subjects = [str(uuid4()) for _ in range(count // PER_TICKET)]
    return [
        EventEnvelope(
            type="ticket.created" if n == 1 else "ticket.edited",
            source="bench",
            workspace_id=workspace,
            subject=subject,
            sequence=n,
            actor=Actor(type="member", id="bench"),
            data={"changes": {"subject": {"from": f"v{n - 1}", "to": f"v{n}"}}},
        )
        for subject in subjects
        for n in range(1, PER_TICKET + 1)
    ]


async def _publish(bootstrap: str, topic: str, events: list[EventEnvelope]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        pending = []
        for i, event in enumerate(events, 1):
            value = event.model_dump_json().encode()
            pending.append(await producer.send(topic, value, key=event.subject.encode()))
            if i % 100_000 == 0:
                print(f"  published {i}/{len(events)}", flush=True)
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def rss_mb() -> float:
    """This process's resident set size now, in MB (Linux)."""
    return resident_mb()["VmRSS"]


def resident_mb() -> dict[str, float]:
    """This process's resident memory now, in MB (Linux's /proc/self/status): `VmRSS` in all,
    of it `RssAnon` (the heap: what the process itself allocated) and `RssFile` (pages of
    mapped files, here mostly the SQLite database mapped by `mmap_size`: the OS page cache's,
    shared, and dropped under memory pressure without being written anywhere)."""
    sizes = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                sizes[name] = int(value.split()[0]) * 1024 / 1_000_000
    return sizes


class RssPeak:
    """The highest RSS seen while the block runs (sampled every 50 ms)."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> RssPeak:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, rss_mb())


async def run(*, events: int, rebuild_events: int) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    await ensure_topics(bootstrap)
    admin = os.environ.get("HELPDESK_TEST_POSTGRES_URL")
    kinds = ["sqlite", "postgres"] if admin else ["sqlite"]
    runs = [(kind, replicas) for kind in kinds for replicas in (1, 2)]
    # Every consumer group starts where the backlog will begin, so each reads all of it.
    groups = {run: f"bench-{run[0]}-{run[1]}-{uuid4().hex[:6]}" for run in runs}
    raw_group = f"bench-raw-{uuid4().hex[:6]}"
    for group in [*groups.values(), raw_group]:
        await start_group_at_end(bootstrap, group, TICKET_EVENTS)
    backlog = _events(events)
    print(f"activity-log: publishing {len(backlog)} events", flush=True)
    await _publish(bootstrap, TICKET_EVENTS.name, backlog)
    entry_rows = [_row(ActivityEntry.from_event(event)) for event in backlog]
    del backlog
    raw = await _raw(bootstrap, raw_group, len(entry_rows))
    rows = [f"| raw aiokafka consume | {raw:,.0f}/s | | | {rss_mb():.0f} MB |"]
    with tempfile.TemporaryDirectory() as tmp:

        async def fresh_database(kind: str, name: str) -> str:
            if kind == "postgres" and admin:
                return await postgres_database(admin, f"bench_{name}")
            return f"sqlite+aiosqlite:///{tmp}/{name}-{uuid4().hex[:6]}.db"

        raw_insert: dict[str, float] = {}
        for kind in kinds:
            url = await fresh_database(kind, "raw")
            await upgrade_to_head(MIGRATIONS_DIR, url)
            if kind == "sqlite":
                work = _raw_insert_sqlite(url, _sqlite_values(entry_rows))
            else:
                work = _raw_insert_postgres(url, _postgres_values(entry_rows))
            raw_insert[kind] = await _timed_rate(len(entry_rows), work)
            rows.append(
                f"| raw bulk insert of the entry rows, {kind} | {raw_insert[kind]:,.0f}/s "
                f"| | | {rss_mb():.0f} MB |"
            )
        for kind, replicas in runs:
            url = await fresh_database(kind, f"al{replicas}")
            rate, peaks = await _replicas(
                bootstrap, url, groups[(kind, replicas)], replicas, len(entry_rows)
            )
            baseline = raw_insert[kind]
            meets = rate >= CONSUME_TARGET_PER_SECOND and rate >= baseline / 2
            rows.append(
                f"| activity-log, {replicas} replica process(es), {kind} | {rate:,.0f}/s "
                f"| raw insert {baseline:,.0f}/s: x{rate / baseline:.2f}; raw consume "
                f"x{rate / raw:.3f} | {'yes' if meets else '**no**'} "
                f"| {'; '.join(_memory(peak) for peak in peaks)} |"
            )
            if replicas == 1:
                rows.append(await _inbox_sizes(kind, url))
        del entry_rows
        print(f"rebuild: publishing {rebuild_events} events to a copy topic", flush=True)
        copy = Topic(f"bench.ticket-events.{uuid4().hex[:6]}", TICKET_EVENTS.partitions, "copy")
        admin_client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin_client.start()
        await admin_client.create_topics([NewTopic(copy.name, copy.partitions, 1)])
        try:
            await _publish(bootstrap, copy.name, _events(rebuild_events))
            for kind in kinds:
                url = await fresh_database(kind, "rebuilt")
                async with RssPeak() as rss:
                    began = time.perf_counter()
                    report = await rebuild(bootstrap, url, _progress, topic=copy)
                    seconds = time.perf_counter() - began
                rate = report.applied / seconds
                million = REBUILD_TARGET_EVENTS / rate
                rows.append(
                    f"| rebuild of {report.applied:,} events, {kind} | {rate:,.0f}/s "
                    f"| {seconds:.1f} s; 1M events ≈ {million:.0f} s, target "
                    f"{REBUILD_TARGET_SECONDS:.0f} s: x{million / REBUILD_TARGET_SECONDS:.2f} "
                    f"| {'yes' if million <= REBUILD_TARGET_SECONDS else '**no**'} "
                    f"| {rss.peak:.0f} MB |"
                )
        finally:
            await admin_client.delete_topics([copy.name])
            await admin_client.close()
    print(
        "\n| run | events/s | baseline (same run) and ratio | target met | peak RSS |"
        "\n|---|---|---|---|---|"
    )
    for row in rows:
        print(row)


def _memory(peak: dict[str, float]) -> str:
    return (
        f"{peak['VmRSS']:.0f} MB (anonymous {peak['RssAnon']:.0f}, "
        f"file-backed {peak['RssFile']:.0f})"
    )


async def _inbox_sizes(kind: str, url: str) -> str:
    """The inbox's size after the load, and after the pruner the service runs hourly has run
    once the load's rows are older than the retention (the default setting): what the load
    left is forgotten, so the inbox holds about rate times retention rows under a sustained load.
    The rows are aged by moving their `processed_at` back past the retention."""
    retention = timedelta(hours=ActivityLogSettings.model_fields["inbox_retention_hours"].default)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            after_load = await _count(connection, tables.inbox)
            aged = datetime.now(UTC) - retention - timedelta(hours=1)
            await connection.execute(update(tables.inbox).values(processed_at=aged))
        began = time.perf_counter()
        removed = await prune_inbox(
            create_session_factory(engine), tables.inbox, datetime.now(UTC) - retention
        )
        seconds = time.perf_counter() - began
        async with engine.connect() as connection:
            after_pruning = await _count(connection, tables.inbox)
    finally:
        await engine.dispose()
    return (
        f"| inbox rows, {kind}: before the load 0, after it {after_load:,}, after pruning "
        f"{after_pruning:,} | pruned {removed / seconds:,.0f} rows/s | | | |"
    )


async def _count(connection: AsyncConnection, table: Table) -> int:
    return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


def _progress(report: RebuildReport, total: int) -> None:
    if report.read and report.read % 100_000 < BATCH_MAX_RECORDS * 5:
        print(f"  rebuilt {report.read}/{total}", flush=True)


def _row(entry: ActivityEntry) -> dict[str, Any]:
    row = {field.name: getattr(entry, field.name) for field in fields(entry)}
    actor = row.pop("actor")
    return row | {"actor_type": actor.type, "actor_id": actor.id}


async def _timed_rate(count: int, work: Awaitable[None]) -> float:
    began = time.perf_counter()
    await work
    return count / (time.perf_counter() - began)


def _batches(rows: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    return [rows[i : i + BATCH_MAX_RECORDS] for i in range(0, len(rows), BATCH_MAX_RECORDS)]


def _sqlite_values(entry_rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The values as SQLAlchemy stores them on SQLite: uuids as hex, times and JSON as text."""
    return [
        tuple(_sqlite_value(row[column], column in ("changes", "data")) for column in ENTRY_COLUMNS)
        for row in entry_rows
    ]


def _postgres_values(entry_rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        tuple(
            json.dumps(row[column]) if column in ("changes", "data") else row[column]
            for column in ENTRY_COLUMNS
        )
        for row in entry_rows
    ]


async def _raw_insert_sqlite(url: str, values: list[tuple[Any, ...]]) -> None:
    """aiosqlite's executemany, one transaction per batch, the service's pragmas."""
    path = make_url(url).database
    assert path is not None
    statement = _insert_statement("?" for _ in ENTRY_COLUMNS)
    async with aiosqlite.connect(path, isolation_level=None) as connection:
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=NORMAL")
        for batch in _batches(values):
            await connection.execute("BEGIN IMMEDIATE")
            await connection.executemany(statement, batch)
            await connection.execute("COMMIT")


def _sqlite_value(value: Any, is_json: bool) -> Any:
    if is_json:
        return json.dumps(value)
    if hasattr(value, "hex") and hasattr(value, "version"):  # a UUID
        return value.hex
    if hasattr(value, "isoformat"):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


async def _raw_insert_postgres(url: str, values: list[tuple[Any, ...]]) -> None:
    """asyncpg's executemany, one transaction per batch."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        statement = _insert_statement(f"${n}" for n in range(1, len(ENTRY_COLUMNS) + 1))
        for batch in _batches(values):
            async with connection.transaction():
                await connection.executemany(statement, batch)
    finally:
        await connection.close()


def _insert_statement(placeholders: Any) -> str:
    return (
        f"INSERT INTO activity_entries ({', '.join(ENTRY_COLUMNS)}) "
        f"VALUES ({', '.join(placeholders)})"
    )


async def _raw(bootstrap: str, group: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        TICKET_EVENTS.name, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    read = 0
    began = time.perf_counter()
    try:
        while read < count:
            batches = await consumer.getmany(timeout_ms=500)
            read += sum(len(records) for records in batches.values())
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return count / (time.perf_counter() - began)


async def _replicas(
    bootstrap: str, url: str, group: str, replicas: int, count: int
) -> tuple[float, list[dict[str, float]]]:
    """Events stored per second, from the first stored entry (the group has joined) to the
    last, by `replicas` activity-log processes (as deployed: each its own process); and each
    process's peak resident memory in MB (`resident_mb`'s figures, each its own peak)."""
    await upgrade_to_head(MIGRATIONS_DIR, url)
    print(f"  {replicas} replica process(es) on {url.split(':')[0]} ...", flush=True)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from tests.benchmarks.activity import replica_process; "
            "replica_process(*sys.argv[1:])",
            url,
            bootstrap,
            group,
            str(count),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(replicas)
    ]
    engine = create_engine(url, read_only=True)
    try:
        first, began = await _when(lambda: _stored(engine), lambda n: n > 0)
        last, ended = await _when(lambda: _stored(engine), lambda n: n >= count)
    finally:
        await engine.dispose()
        outputs = [(await process.communicate())[0].decode() for process in processes]
    peaks = [
        json.loads(line.split("=", 1)[1])
        for output in outputs
        for line in output.splitlines()
        if line.startswith(RSS_LINE)
    ]
    return (last - first) / (ended - began), peaks


RSS_LINE = "replica_peak_rss_mb="


def replica_process(url: str, bootstrap: str, group: str, count: str) -> None:
    """One activity-log replica (a child process of the benchmark): consumes until the
    database holds `count` entries, then stops and prints its peak RSS."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(_serve_until(url, bootstrap, group, int(count)))


async def _serve_until(url: str, bootstrap: str, group: str, count: int) -> None:
    service = bootstrap_activity_log(
        ActivityLogSettings(
            database_url=url, kafka_bootstrap_servers=bootstrap, consumer_group=group
        )
    )
    await service.broker.start()
    peak = resident_mb()
    try:
        while await _stored(service.read_engine) < count:
            now = resident_mb()
            peak = {name: max(size, now[name]) for name, size in peak.items()}
            # Less often than the benchmark's own watch (which times the run): each count
            # reads the whole table, in the replica's process.
            await asyncio.sleep(0.25)
    finally:
        await stop_broker(service.broker)
        await service.engine.dispose()
        await service.read_engine.dispose()
    print(f"{RSS_LINE}{json.dumps(peak)}", flush=True)


async def _stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            await connection.scalar(select(func.count()).select_from(tables.activity_entries)) or 0
        )


async def _when(
    read: Callable[[], Awaitable[int]], done: Callable[[int], bool]
) -> tuple[int, float]:
    while True:
        value = await read()
        if done(value):
            return value, time.perf_counter()
        await asyncio.sleep(0.05)
