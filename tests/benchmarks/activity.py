"""activity-log's consume rate (one and two replicas in one group) beside a raw aiokafka
consumer reading the same messages, and the time to rebuild the log from 100,000 events.

All consumers read the same backlog of `--events` events published to `ticket.events.v1`
just before; each replica run stores into a fresh database. The rebuild replays a dedicated
copy topic (same partitions) into a fresh database through the rebuild command's code.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select

from services.activity_log.bootstrap import MIGRATIONS_DIR
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.entrypoints.rebuild import RebuildReport, rebuild
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store import tables
from shared.broker import stop_broker
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import TICKET_EVENTS, Topic
from shared.kafka_admin import ensure_topics
from shared.migrations import upgrade_to_head
from tests.benchmarks.pipeline import postgres_database
from tests.support.kafka_reader import start_group_at_end

PER_TICKET = 10


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
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for i, event in enumerate(events, 1):
            await producer.send(topic, event.model_dump_json().encode(), key=event.subject.encode())
            if i % 20_000 == 0:
                print(f"  published {i}/{len(events)}", flush=True)
        await producer.flush()
    finally:
        await producer.stop()


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
    raw = await _raw(bootstrap, raw_group, len(backlog))
    rows = [f"| raw aiokafka consume | {raw:,.0f}/s | x1.00 | |"]
    with tempfile.TemporaryDirectory() as tmp:

        async def fresh_database(kind: str, name: str) -> str:
            if kind == "postgres" and admin:
                return await postgres_database(admin, f"bench_{name}")
            return f"sqlite+aiosqlite:///{tmp}/{name}.db"

        for kind, replicas in runs:
            url = await fresh_database(kind, f"al{replicas}")
            rate = await _replicas(bootstrap, url, groups[(kind, replicas)], replicas, len(backlog))
            rows.append(
                f"| activity-log, {replicas} replica(s), {kind} | {rate:,.0f}/s "
                f"| x{rate / raw:.3f} | |"
            )
        print(f"rebuild: publishing {rebuild_events} events to a copy topic", flush=True)
        copy = Topic(f"bench.ticket-events.{uuid4().hex[:6]}", TICKET_EVENTS.partitions, "copy")
        admin_client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin_client.start()
        await admin_client.create_topics([NewTopic(copy.name, copy.partitions, 1)])
        try:
            await _publish(bootstrap, copy.name, _events(rebuild_events))
            for kind in kinds:
                url = await fresh_database(kind, "rebuilt")
                began = time.perf_counter()
                report = await rebuild(bootstrap, url, _progress, topic=copy)
                seconds = time.perf_counter() - began
                rows.append(
                    f"| rebuild of {report.applied:,} events, {kind} | "
                    f"{report.applied / seconds:,.0f}/s | | {seconds:.1f} s |"
                )
        finally:
            await admin_client.delete_topics([copy.name])
            await admin_client.close()
    print("\n| run | events/s | ratio to raw | time |\n|---|---|---|---|")
    for row in rows:
        print(row)


def _progress(report: RebuildReport, total: int) -> None:
    if report.read and report.read % 10_000 < 500:
        print(f"  rebuilt {report.read}/{total}", flush=True)


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


async def _replicas(bootstrap: str, url: str, group: str, replicas: int, count: int) -> float:
    await upgrade_to_head(MIGRATIONS_DIR, url)
    services = [
        bootstrap_activity_log(
            ActivityLogSettings(
                database_url=url, kafka_bootstrap_servers=bootstrap, consumer_group=group
            )
        )
        for _ in range(replicas)
    ]
    print(f"  {replicas} replica(s) on {url.split(':')[0]} ...", flush=True)
    began = time.perf_counter()
    for service in services:
        await service.broker.start()
    try:
        while True:
            async with services[0].engine.connect() as connection:
                stored = int(
                    await connection.scalar(
                        select(func.count()).select_from(tables.activity_entries)
                    )
                    or 0
                )
            if stored >= count:
                break
            await asyncio.sleep(0.2)
    finally:
        for service in services:
            await stop_broker(service.broker)
            await service.engine.dispose()
    return count / (time.perf_counter() - began)
