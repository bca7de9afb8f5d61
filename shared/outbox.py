"""Transactional outbox: an event is written in the same transaction as the state it describes,
then a relay publishes it to Kafka and marks it sent.

So a committed change is never without its event, and an event is never published for a change
that rolled back. The relay may publish a row twice (crash between publish and mark), which is
why every consumer de-duplicates by event id (`shared.inbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.contracts.envelope import EventEnvelope
from shared.db import UTCDateTime

log = structlog.get_logger(__name__)

OUTBOX_TABLE = "outbox"


def define_outbox_table(metadata: MetaData) -> Table:
    """The outbox table, added to a service's own metadata (and so to its migrations)."""
    return Table(
        OUTBOX_TABLE,
        metadata,
        # Publishing in `position` order keeps one ticket's events in commit order.
        Column(
            "position",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("message_key", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
        Column("published_at", UTCDateTime(), nullable=True, index=True),
    )


def outbox_row(topic: str, event: EventEnvelope) -> dict[str, Any]:
    """The values of one outbox row for `event`, keyed by its subject."""
    return {
        "event_id": str(event.id),
        "topic": topic,
        "message_key": event.subject,
        "payload": event.model_dump_json(),
    }


def envelope_headers(payload: str) -> dict[str, str]:
    """Headers a subscriber can route on without parsing the body."""
    body = json.loads(payload)
    return {
        "event-type": str(body.get("type", "")),
        "event-id": str(body.get("id", "")),
        "workspace-id": str(body.get("workspace_id", "")),
    }


class OutboxRelay:
    """Publishes a service's outbox rows to Kafka, oldest first, and marks them published.

    No transaction is open while it waits for Kafka: it reads a batch, publishes it, then
    marks it, so the service's own writes never queue behind a network round trip. On
    PostgreSQL a session advisory lock elects one publishing replica, so several replicas
    never interleave one ticket's events. Anywhere, a crash between publishing and marking
    publishes those rows again: consumers drop them by event id.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        broker: KafkaBroker,
        table: Table,
        *,
        poll_interval_seconds: float = 0.2,
        batch_size: int = 500,
        lock_name: str = "outbox",
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._table = table
        self._poll_interval = poll_interval_seconds
        self._batch_size = batch_size
        self._lock_key = zlib.crc32(lock_name.encode())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so they go out without waiting a poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self._engine.connect() as connection:
            if not await self._lock(connection):
                return 0
            try:
                rows = (
                    await connection.execute(
                        select(
                            self._table.c.position,
                            self._table.c.topic,
                            self._table.c.message_key,
                            self._table.c.payload,
                        )
                        .where(self._table.c.published_at.is_(None))
                        .order_by(self._table.c.position)
                        .limit(self._batch_size)
                    )
                ).all()
                await connection.commit()
                if not rows:
                    return 0
                await self._publish(rows)
                await connection.execute(
                    update(self._table)
                    .where(self._table.c.position.in_([row.position for row in rows]))
                    .values(published_at=datetime.now(UTC))
                )
                await connection.commit()
                return len(rows)
            finally:
                await self._unlock(connection)

    async def _publish(self, rows: Sequence[Any]) -> None:
        # Hand every record to the producer first, then wait for all acknowledgements
        # (acks=all): the producer batches them, and its idempotence keeps their order.
        pending = [
            await self._broker.publish(
                row.payload.encode(),
                row.topic,
                key=row.message_key.encode(),
                headers=envelope_headers(row.payload),
                no_confirm=True,
            )
            for row in rows
        ]
        await asyncio.gather(*pending)

    async def _lock(self, connection: AsyncConnection) -> bool:
        if connection.dialect.name != "postgresql":
            return True
        acquired = await connection.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self._lock_key}
        )
        await connection.commit()
        return bool(acquired)

    async def _unlock(self, connection: AsyncConnection) -> None:
        if connection.dialect.name == "postgresql":
            await connection.rollback()  # a failed batch may have left a transaction open
            await connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": self._lock_key}
            )
            await connection.commit()

    async def run_forever(self) -> None:
        while True:
            try:
                published = await self.publish_pending()
            except Exception:
                # Broker or database away for a moment: the rows stay in the outbox and
                # are published on a later round; nothing is lost.
                log.exception("outbox_publish_failed")
                published = 0
                await asyncio.sleep(1.0)
            if published:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def pending_count(self) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count())
                .select_from(self._table)
                .where(self._table.c.published_at.is_(None))
            )
            return int(count or 0)
