"""Create → event → activity entry, beside raw aiokafka produce → consume.

The pipeline: ticket-core's service layer creates a ticket (state + outbox row in one
transaction), its outbox relay publishes `ticket.created` to the real broker with an
idempotent acks=all producer, and activity-log's consumer stores the entry (inbox check +
insert + offset commit). Latency is from the create call to the entry being committed.

The baseline: the same number of messages of the same size, produced with the same producer
settings and consumed by a plain aiokafka consumer on the same broker, in the same run.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import select

import services.activity_log.handlers as activity_handlers
from services.activity_log.bootstrap import MIGRATIONS_DIR as ACTIVITY_LOG_MIGRATIONS
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store.unit_of_work import UnitOfWork
from services.ticket_core import handlers
from services.ticket_core.bootstrap import MIGRATIONS_DIR as TICKET_CORE_MIGRATIONS
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.settings import TicketCoreSettings
from services.ticket_core.store import tables
from shared.broker import stop_broker
from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from shared.kafka_admin import ensure_topics
from shared.migrations import upgrade_to_head
from tests.benchmarks.stats import HEADER, Figures, progress, ratio_line
from tests.support.kafka_reader import start_group_at_end, start_service_groups_at_end


async def run(*, tickets: int, concurrency: int, paced_rate: float) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    await ensure_topics(bootstrap)
    with tempfile.TemporaryDirectory() as tmp:
        databases = {
            "sqlite": (f"sqlite+aiosqlite:///{tmp}/tc.db", f"sqlite+aiosqlite:///{tmp}/al.db")
        }
        if admin := os.environ.get("HELPDESK_TEST_POSTGRES_URL"):
            databases["postgres"] = await _postgres_databases(admin)
        for ticket_core_url, activity_log_url in databases.values():
            await upgrade_to_head(TICKET_CORE_MIGRATIONS, ticket_core_url)
            await upgrade_to_head(ACTIVITY_LOG_MIGRATIONS, activity_log_url)
        # Burst: everything offered at once, for throughput (latency is then mostly queueing).
        # Paced: a steady rate well under capacity, for the latency of one ticket.
        for mode, rate, count in (
            ("burst", None, tickets),
            (f"{paced_rate:g}/s", paced_rate, tickets // 2),
        ):
            results: list[Figures] = []
            payload_size = 0
            for kind, (ticket_core_url, activity_log_url) in databases.items():
                print(f"pipeline on {kind}, {mode}: {count} tickets, {concurrency} creators")
                figures, payload_size = await _pipeline(
                    bootstrap,
                    f"{kind}, {mode}",
                    ticket_core_url,
                    activity_log_url,
                    count,
                    concurrency,
                    rate,
                )
                results.append(figures)
            print(f"raw aiokafka, {mode}: {count} messages of {payload_size} bytes")
            baseline = await raw_kafka(
                bootstrap,
                mode,
                count,
                TICKET_EVENTS.partitions,
                senders_waiting_each(count, payload_size, concurrency, rate),
            )
            print()
            print(HEADER)
            for figures in [*results, baseline]:
                print(figures.row())
            for figures in results:
                print(ratio_line(figures, baseline))
            print()


async def _postgres_databases(admin_url: str) -> tuple[str, str]:
    return (
        await postgres_database(admin_url, "bench_tc"),
        await postgres_database(admin_url, "bench_al"),
    )


async def postgres_database(admin_url: str, prefix: str) -> str:
    """A new, empty database on the benchmark's PostgreSQL server."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    database = f"{prefix}_{uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


async def _pipeline(
    bootstrap: str,
    kind: str,
    ticket_core_url: str,
    activity_log_url: str,
    tickets: int,
    concurrency: int,
    rate: float | None,
) -> tuple[Figures, int]:
    core_group = f"bench-core-{uuid4().hex[:8]}"
    await start_service_groups_at_end(bootstrap, core_group)
    core = bootstrap_ticket_core(
        TicketCoreSettings(
            database_url=ticket_core_url,
            kafka_bootstrap_servers=bootstrap,
            consumer_group=core_group,
        )
    )
    group = f"bench-activity-{uuid4().hex[:8]}"
    await start_group_at_end(bootstrap, group, TICKET_EVENTS)
    activity = bootstrap_activity_log(
        ActivityLogSettings(
            database_url=activity_log_url,
            kafka_bootstrap_servers=bootstrap,
            consumer_group=group,
        )
    )
    started: dict[str, float] = {}
    stored: dict[str, float] = {}
    all_stored = asyncio.Event()
    record_events = activity_handlers.record_events

    async def timed_record(uow: UnitOfWork, events: Sequence[EventEnvelope]) -> int:
        # Measure where the effect is committed; events of earlier runs are skipped.
        result = await record_events(uow, events)
        committed = time.perf_counter()
        for event in events:
            if event.subject in started and event.subject not in stored:
                stored[event.subject] = committed
                progress(f"{kind} stored", len(stored), tickets)
        if len(stored) == tickets:
            all_stored.set()
        return result

    activity_handlers.record_events = timed_record
    await core.broker.start()
    core.relay.start()
    await activity.broker.start()
    try:
        workspace = await handlers.create_workspace(core.unit_of_work(), "Bench", "b@bench.io")
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(tickets):
            queue.put_nowait(i)

        async def creator() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await pace(begin, i, rate)
                begun = time.perf_counter()
                ticket = await handlers.create_ticket(
                    core.unit_of_work(),
                    handlers.CreateTicket(
                        workspace_id=workspace.workspace.id,
                        actor_id=workspace.owner.id,
                        subject=f"Benchmark ticket {i}",
                        description="Customer cannot pay; the checkout answers 500.",
                    ),
                )
                started[str(ticket.id)] = begun

        begin = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        # The service layer's own share: every create committed (its event in the outbox).
        created = time.perf_counter() - begin
        await asyncio.wait_for(all_stored.wait(), timeout=600)
        elapsed = time.perf_counter() - begin
        print(
            f"{kind}: the {tickets} creates returned after {created:.2f} s "
            f"({tickets / created:,.0f}/s); the last entry stored after {elapsed:.2f} s"
        )
        async with core.session_factory() as session:
            # The size of a real ticket.created event, for the raw baseline's messages.
            sample = await session.scalar(
                select(tables.outbox.c.payload).order_by(tables.outbox.c.position.desc()).limit(1)
            )
    finally:
        activity_handlers.record_events = record_events
        await stop_broker(activity.broker)
        await core.relay.stop()
        await stop_broker(core.broker)
        await core.engine.dispose()
        await activity.engine.dispose()
    latencies = [(stored[key] - started[key]) * 1000 for key in started]
    return Figures(f"pipeline ({kind})", tickets, elapsed, latencies), len(sample or "")


async def pace(begin: float, i: int, rate: float | None) -> None:
    """At a paced rate, wait until the i-th message's slot."""
    if rate is not None:
        await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))


# Publishes the records keyed "0".."count-1" to the topic; when each key was handed over.
SendAll = Callable[[AIOKafkaProducer, str], Awaitable[dict[bytes, float]]]


def senders_waiting_each(count: int, size: int, concurrency: int, rate: float | None) -> SendAll:
    """`concurrency` senders, each waiting for a record's acknowledgement before the next, as
    the pipeline's creators wait for their create."""

    async def send_all(producer: AIOKafkaProducer, topic: str) -> dict[bytes, float]:
        sent: dict[bytes, float] = {}
        body = b"x" * size
        begin = time.perf_counter()

        async def sender(worker: int) -> None:
            for i in range(worker, count, concurrency):
                await pace(begin, i, rate)
                key = f"{i}".encode()
                sent[key] = time.perf_counter()
                await producer.send_and_wait(topic, body, key=key)

        await asyncio.gather(*(sender(w) for w in range(concurrency)))
        return sent

    return send_all


async def raw_kafka(
    bootstrap: str, mode: str, count: int, partitions: int, send_all: SendAll
) -> Figures:
    """The baseline: `send_all` publishes with the services' producer settings to a new topic
    of `partitions`, read back by a plain consumer that commits after each poll."""
    topic = f"bench.raw.{uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, partitions, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await consumer.start()
    received: dict[bytes, float] = {}
    try:

        async def receiver() -> None:
            while len(received) < count:
                batches = await consumer.getmany(timeout_ms=200)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        received[record.key or b""] = now
                        progress("raw received", len(received), count)
                # Commit after the batch, as the services' consumers commit after theirs.
                if batches:
                    await consumer.commit()

        begin = time.perf_counter()
        sent, _ = await asyncio.gather(send_all(producer, topic), receiver())
        elapsed = time.perf_counter() - begin
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
    latencies = [(received[key] - at) * 1000 for key, at in sent.items()]
    return Figures(f"raw aiokafka ({mode})", count, elapsed, latencies)


if __name__ == "__main__":
    raise SystemExit("run with: make bench")
