"""The outbox relay on its own: a backlog of outbox rows published by ticket-core's relay,
beside raw aiokafka producing the same rows (same payloads, keys, headers, producer settings)
on the same broker in the same run.

The backlog: `ticket.created`-sized envelopes, five per ticket (one partition key per
ticket), written straight into a fresh ticket-core database, on a topic of this run with
as many partitions as `ticket.events.v1`. The relay's time is from its first read to the
last row marked published. The outbox's size is printed before, after publishing and after
pruning (the rows published longer ago than the retention are deleted).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ticket_core.bootstrap import MIGRATIONS_DIR as TICKET_CORE_MIGRATIONS
from services.ticket_core.store import tables
from shared.broker import create_broker, producer_batch_bytes, stop_broker
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from shared.db import create_engine
from shared.migrations import upgrade_to_head
from shared.outbox import OutboxRelay, envelope_headers, outbox_row
from shared.settings import SystemSettings
from tests.benchmarks.pipeline import postgres_database

EVENTS_PER_TICKET = 5


async def run(*, rows: int, rounds: int = 3) -> None:
    """`rounds` times, each database's relay then raw aiokafka, back to back: on a shared
    machine the load changes from one second to the next, so each side's best round is
    compared, measured under the same conditions as the other's."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    topic = f"bench.relay.{uuid4().hex[:8]}"
    await admin.create_topics([NewTopic(topic, TICKET_EVENTS.partitions, 1)])
    best: dict[str, float] = {}
    try:
        backlog = _backlog(topic, rows)
        admin_url = os.environ.get("HELPDESK_TEST_POSTGRES_URL")
        with tempfile.TemporaryDirectory() as tmp:
            for round_number in range(1, rounds + 1):
                databases = {"sqlite": f"sqlite+aiosqlite:///{tmp}/tc{round_number}.db"}
                if admin_url:
                    databases["postgres"] = await postgres_database(admin_url, "bench_relay")
                for kind, url in databases.items():
                    print(f"round {round_number}, relay on {kind}: {rows} outbox rows", flush=True)
                    seconds = await _relay(bootstrap, url, backlog)
                    best[kind] = min(seconds, best.get(kind, seconds))
                    print(f"round {round_number}, raw aiokafka: the same {rows} rows", flush=True)
                    seconds = await _raw(bootstrap, backlog)
                    best["raw"] = min(seconds, best.get("raw", seconds))
    finally:
        await admin.delete_topics([topic])
        await admin.close()
    print(f"\n| run (best of {rounds}) | rows | throughput |\n|---|---|---|")
    for kind, seconds in best.items():
        name = "raw aiokafka producer" if kind == "raw" else f"relay ({kind})"
        print(f"| {name} | {rows} | {rows / seconds:,.0f}/s |")
    for kind, seconds in best.items():
        if kind != "raw":
            print(
                f"relay ({kind}) vs raw aiokafka producer: throughput x{best['raw'] / seconds:.2f}"
            )
    print()


def _backlog(topic: str, rows: int) -> list[dict[str, object]]:
    workspace_id = uuid4()
    actor = Actor(type="member", id=str(uuid4()))
    tickets = [str(uuid4()) for _ in range(max(rows // EVENTS_PER_TICKET, 1))]
    backlog = []
    for i in range(rows):
        ticket = tickets[i % len(tickets)]
        event = EventEnvelope(
            type="ticket.created",
            source="ticket-core",
            workspace_id=workspace_id,
            subject=ticket,
            sequence=i // len(tickets) + 1,
            correlation_id=str(uuid4()),
            causation_id=str(uuid4()),
            actor=actor,
            data={
                "number": i + 1,
                "subject": f"Benchmark ticket {i}",
                "description": "Customer cannot pay; the checkout answers 500.",
                "status": "open",
                "priority": "normal",
                "assignee_id": None,
            },
        )
        backlog.append(outbox_row(topic, event))
    return backlog


async def _outbox_size(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(tables.outbox)) or 0)


async def _relay(bootstrap: str, url: str, backlog: list[dict[str, object]]) -> float:
    await upgrade_to_head(TICKET_CORE_MIGRATIONS, url)
    engine = create_engine(url)
    broker = create_broker(
        SystemSettings(kafka_bootstrap_servers=bootstrap), client_id="bench-relay"
    )
    relay = OutboxRelay(engine, broker, tables.outbox, lock_name="bench-relay-outbox")
    try:
        async with engine.begin() as connection:
            for start in range(0, len(backlog), 1000):
                await connection.execute(insert(tables.outbox), backlog[start : start + 1000])
        await broker.start()
        print(f"  outbox rows before: {await _outbox_size(engine)}", flush=True)
        begin = time.perf_counter()
        while await relay.publish_pending():
            pass
        elapsed = time.perf_counter() - begin
        print(f"  outbox rows after publishing: {await _outbox_size(engine)}", flush=True)
        # As if the retention had passed since they were published.
        async with engine.begin() as connection:
            await connection.execute(
                update(tables.outbox).values(published_at=datetime.now(UTC) - timedelta(days=365))
            )
        await relay.prune_published()
        print(f"  outbox rows after pruning: {await _outbox_size(engine)}", flush=True)
    finally:
        await stop_broker(broker)
        await engine.dispose()
    return elapsed


async def _raw(bootstrap: str, backlog: list[dict[str, object]]) -> float:
    # The relay's producer settings (`shared.broker.create_broker`).
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        max_batch_size=producer_batch_bytes(SystemSettings(kafka_bootstrap_servers=bootstrap)),
    )
    await producer.start()
    try:
        begin = time.perf_counter()
        deliveries = []
        for row in backlog:
            payload = str(row["payload"])
            deliveries.append(
                await producer.send(
                    str(row["topic"]),
                    payload.encode(),
                    key=str(row["message_key"]).encode(),
                    headers=[(k, v.encode()) for k, v in envelope_headers(payload).items()],
                )
            )
        await asyncio.gather(*deliveries)
        return time.perf_counter() - begin
    finally:
        await producer.stop()
