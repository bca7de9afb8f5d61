"""Rebuild: replay `ticket.events.v1` from its first offset into a fresh activity store.

It reads with a plain consumer (no group, so the live service's offsets are untouched) up to
the end offsets it saw when it started, and applies every event through the same handler as
the live consumer, so the rebuilt history equals the live one entry for entry: in batches of
up to `REBUILD_BATCH_EVENTS` events, one transaction each.
"""

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from sqlalchemy import func, select

from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import TICKET_EVENTS, Topic
from shared.db import create_engine, create_session_factory
from shared.migrations import upgrade_to_head

from .. import handlers
from ..bootstrap import MIGRATIONS_DIR
from ..store import tables
from ..store.unit_of_work import UnitOfWork

# Events per transaction (the live consumer takes what one poll returns, up to 1,000): the
# bigger, the fewer statements per event, up to where a batch's rows no longer fit the caches.
REBUILD_BATCH_EVENTS = 5000
REBUILD_FETCH_BYTES = 8 * 1024 * 1024


class NotEmpty(Exception):
    """The target store already holds entries: a rebuild goes into a fresh one."""


@dataclass
class RebuildReport:
    read: int = 0
    applied: int = 0
    skipped_invalid: int = 0


async def rebuild(
    bootstrap_servers: str,
    database_url: str,
    progress: Callable[[RebuildReport, int], None] = lambda _report, _total: None,
    topic: Topic = TICKET_EVENTS,
    *,
    security: Mapping[str, Any] | None = None,
) -> RebuildReport:
    """`topic` is only ever changed by the benchmark, which replays a copy of its own."""
    await upgrade_to_head(MIGRATIONS_DIR, database_url)
    engine = create_engine(database_url)
    session_factory = create_session_factory(engine)
    try:
        async with engine.connect() as connection:
            if await connection.scalar(select(func.count()).select_from(tables.activity_entries)):
                raise NotEmpty(
                    f"{database_url} already has activity entries; rebuild into a new, empty "
                    "database, then point ACTIVITY_LOG_DATABASE_URL at it."
                )
        return await _replay(
            bootstrap_servers, topic, lambda: UnitOfWork(session_factory), progress, security
        )
    finally:
        await engine.dispose()


async def _replay(
    bootstrap_servers: str,
    topic: Topic,
    new_uow: Callable[[], UnitOfWork],
    progress: Callable[[RebuildReport, int], None],
    security: Mapping[str, Any] | None,
) -> RebuildReport:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        # Big fetches: the replay reads as fast as the store takes them.
        max_partition_fetch_bytes=REBUILD_FETCH_BYTES,
        **(security or {}),
    )
    await consumer.start()
    report = RebuildReport()
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        starts = {tp: await consumer.position(tp) for tp in partitions}
        ends = await consumer.end_offsets(partitions)
        total = sum(ends[tp] - starts[tp] for tp in partitions)
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        # The store writes one batch while the next is read and validated (the database
        # works in its own process or thread meanwhile); a batch starts only once the one
        # before it is committed, so the order holds.
        storing: asyncio.Task[int] | None = None
        try:
            while remaining:
                fetched = await consumer.getmany(
                    *remaining, timeout_ms=1000, max_records=REBUILD_BATCH_EVENTS
                )
                events = []
                for tp, records in fetched.items():
                    for record in records:
                        if record.offset >= ends[tp]:
                            continue
                        report.read += 1
                        try:
                            events.append(EventEnvelope.model_validate_json(record.value))
                        except ValidationError:
                            report.skipped_invalid += 1  # the live consumer dead-lettered it
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                if storing is not None:
                    report.applied += await storing
                    progress(report, total)
                # One transaction per fetch: a partition holds whole tickets and its records
                # come in order, so each ticket's events still go in order.
                storing = asyncio.create_task(handlers.record_events(new_uow(), events))
            if storing is not None:
                report.applied += await storing
                storing = None
                progress(report, total)
        finally:
            if storing is not None and not storing.done():
                storing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await storing
    finally:
        await consumer.stop()
    return report
