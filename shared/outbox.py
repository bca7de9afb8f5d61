"""Transactional outbox: an event is written in the same transaction as the state it describes,
then a relay publishes it to Kafka and marks it sent.

So a committed change is never without its event, and an event is never published for a change
that rolled back. The relay may publish a row twice (crash between publish and mark), which is
why every consumer de-duplicates by event id (`shared.inbox`).

An outbox never stalls: `outbox_row` refuses an event larger than the system's maximum
message size before anything is committed, and a row the broker refuses for good anyway
(too large for its topic, an invalid topic, any other error retrying cannot cure) is set aside
(`failed_at`, `failure_reason`), counted, logged once and shown in `/readyz`, while the relay
goes on with the next rows. A broker that is away is waited for: the rows stay and go later.

Published rows are kept for a retention (`<PREFIX>_OUTBOX_RETENTION_SECONDS`, default one
hour), then the relay deletes them, a bounded chunk per transaction, so the table stays
bounded under a sustained load (about rate times retention rows). Pending and set-aside rows are
never deleted. De-duplication does not depend on these rows: consumers keep their own inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faststream.kafka import KafkaBroker
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    ColumnElement,
    MetaData,
    String,
    Table,
    Text,
    any_,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.broker import (
    DEAD_LETTER_HEADROOM_BYTES,
    PermanentFailure,
    dependency_backoff_seconds,
    kafka_producer,
)
from shared.contracts.envelope import EnvelopeHeaders, EventEnvelope
from shared.db import UTCDateTime, serial_id, writer_turn
from shared.settings import SystemSettings

log = structlog.get_logger(__name__)

OUTBOX_TABLE = "outbox"
# On stop, how long the relay may go on publishing what is pending before it gives up (what
# is left goes out at the next start).
OUTBOX_FLUSH_SECONDS = 5.0
# Rows read, published and marked per round: large enough that the round trips (read, mark,
# commit, the acknowledgements) are shared by many rows, small enough that one round's
# transactions stay short and a crash re-sends little.
OUTBOX_BATCH_SIZE = 5000
# Positions per `UPDATE ... WHERE position IN (...)`: under every database's parameter limit.
MARK_CHUNK = 1000
# Published rows deleted per transaction when pruning, so a large backlog of old rows never
# holds the write lock long; and how often the relay prunes.
PRUNE_CHUNK = 5000
# Batches one `publish_pending` publishes back to back, each read and handed over while the
# one before is acknowledged; the relay prunes and checks for a stop between calls.
PIPELINED_BATCHES = 4
PRUNE_INTERVAL_SECONDS = 30.0


def define_outbox_table(metadata: MetaData) -> Table:
    """The outbox table, added to a service's own metadata (and so to its migrations)."""
    return Table(
        OUTBOX_TABLE,
        metadata,
        # Publishing in `position` order keeps one ticket's events in commit order.
        serial_id("position"),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("message_key", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
        Column("published_at", UTCDateTime(), nullable=True, index=True),
        # Set aside: the broker refused the row for good; it is never sent again.
        Column("failed_at", UTCDateTime(), nullable=True),
        Column("failure_reason", String(FAILURE_REASON_MAX_LENGTH), nullable=True),
    )


FAILURE_REASON_MAX_LENGTH = 1000


def _which_row(outbox: Table) -> tuple[Column[Any], ...]:
    """What names an outbox row, to publish it, mark it, or show it set aside."""
    return outbox.c.position, outbox.c.event_id, outbox.c.topic


def _among(
    connection: AsyncConnection, column: Column[Any], positions: list[int]
) -> ColumnElement[bool]:
    """`column` is one of `positions`: on PostgreSQL `= ANY(array)`, one parameter, so one
    prepared statement and a short plan however many there are (an IN list of a thousand
    parameters is planned anew for every length); elsewhere an IN list."""
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam("positions", positions, type_=ARRAY(BigInteger())))
    return column.in_(positions)


class MessageTooLarge(PermanentFailure):
    """An event whose message would be larger than the system's maximum message size."""


@functools.cache
def configured_max_message_bytes() -> int:
    """The system's maximum message size (`KAFKA_MAX_MESSAGE_BYTES`), read once per process."""
    return SystemSettings().kafka_max_message_bytes


def message_size(key: str, payload: str, headers: dict[str, str]) -> int:
    """The size of the record the producer checks against its `max_request_size`."""
    return int(
        DefaultRecordBatchBuilder.estimate_size_in_bytes(
            key.encode(),
            payload.encode(),
            [(name, value.encode()) for name, value in headers.items()],
        )
    )


def outbox_row(
    topic: str, event: EventEnvelope, *, max_message_bytes: int | None = None
) -> dict[str, Any]:
    """The values of one outbox row for `event`, keyed by its subject.

    Raises `MessageTooLarge` when the message (value, key and headers) would not fit in the
    maximum message size, less the room a dead letter's headers need: it could never be
    published, so the caller's transaction must fail instead of committing it."""
    payload = event.model_dump_json()
    headers = envelope_headers(payload)
    limit = (max_message_bytes or configured_max_message_bytes()) - DEAD_LETTER_HEADROOM_BYTES
    size = message_size(event.subject, payload, headers)
    if size > limit:
        raise MessageTooLarge(
            f"event {event.type} {event.id} for {topic} would be a {size}-byte message, over "
            f"the limit of {limit} bytes (KAFKA_MAX_MESSAGE_BYTES less {DEAD_LETTER_HEADROOM_BYTES}"
            " for dead-letter headers); nothing was written. Make the event smaller (send a "
            "reference to large content) or raise KAFKA_MAX_MESSAGE_BYTES on the broker and "
            "every service together."
        )
    return {
        "event_id": str(event.id),
        "topic": topic,
        "message_key": event.subject,
        "payload": payload,
    }


def envelope_headers(payload: str) -> dict[str, str]:
    """The headers the contract promises (`EnvelopeHeaders`), from the envelope's JSON."""
    return EnvelopeHeaders.of(json.loads(payload)).as_kafka()


# Refusals that retrying can cure although aiokafka does not call them retriable: a broker not
# reached in time, credentials or rights an operator is about to fix. Their rows wait.
_WAIT_ON = (
    KafkaTimeoutError,
    AuthenticationFailedError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)


def refused_for_good(error: BaseException) -> bool:
    """True when the broker (or the producer, before sending) will never take this record:
    too large, an invalid topic, any non-retriable Kafka error; or a row that is not even an
    envelope. False for a broker that is away, which is waited for."""
    if isinstance(error, _WAIT_ON):
        return False
    if isinstance(error, KafkaError):
        return not error.retriable
    return isinstance(error, ValueError)  # a payload that is not JSON: no header, no message


def _all_handed_over(rows: Sequence[Any], outcomes: list[Any]) -> bool:
    """Whether `_hand_over` went through every row (it stops at a refusal that may pass)."""
    return len(outcomes) == len(rows) and not (
        isinstance(outcomes[-1], BaseException) and not refused_for_good(outcomes[-1])
    )


@dataclass(frozen=True, slots=True)
class SetAside:
    position: int
    event_id: str
    topic: str
    reason: str


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
        batch_size: int = OUTBOX_BATCH_SIZE,
        retention_seconds: float = 3600.0,
        lock_name: str = "outbox",
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._table = table
        self._poll_interval = poll_interval_seconds
        self._batch_size = batch_size
        self._retention = timedelta(seconds=retention_seconds)
        self._lock_key = zlib.crc32(lock_name.encode())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._next_prune = 0.0  # time.monotonic() of the next prune; at once after a start
        self.set_aside_since_start = 0

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so they go out without waiting a poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish what is pending, up to `PIPELINED_BATCHES` batches; returns how many rows
        were published or set aside.

        While the broker acknowledges one batch, the next is read and handed over, and the
        first is then marked: the producer always has a batch in flight instead of draining
        between batches. The next batch is the rows after the last one handed over, so a
        ticket's events still go in position order, and when a batch stops (the broker away)
        the one handed over after it is not marked: it goes again with the rest.

        Raises when the broker is away (after marking what did go out): those rows stay."""
        async with self._engine.connect() as connection:
            if not await self._lock(connection):
                return 0
            try:
                rows = await self._next_batch(connection)
                if not rows:
                    return 0
                in_flight = (rows, await self._hand_over(rows))
                handled = 0
                for batch in range(1, PIPELINED_BATCHES + 1):
                    rows, outcomes = in_flight
                    following: Sequence[Any] = []
                    if batch < PIPELINED_BATCHES and _all_handed_over(rows, outcomes):
                        following = await self._next_batch(connection, after=rows[-1].position)
                    next_flight = (following, await self._hand_over(following))
                    published, set_aside, waiting_on = await self._settle(rows, outcomes)
                    await self._mark(connection, published, set_aside)
                    handled += len(published) + len(set_aside)
                    if waiting_on is not None:
                        await self._settle(*next_flight)  # sent after the stop: they go again
                        raise waiting_on
                    if not following:
                        break
                    in_flight = next_flight
                return handled
            finally:
                await self._unlock(connection)

    async def _next_batch(
        self, connection: AsyncConnection, *, after: int | None = None
    ) -> Sequence[Any]:
        """The oldest rows neither published nor set aside (with a position above `after`,
        when given); no transaction stays open."""
        table = self._table
        query = select(*_which_row(table), table.c.message_key, table.c.payload).where(
            table.c.published_at.is_(None), table.c.failed_at.is_(None)
        )
        if after is not None:
            query = query.where(table.c.position > after)
        async with writer_turn(self._engine):
            rows = (
                await connection.execute(query.order_by(table.c.position).limit(self._batch_size))
            ).all()
            await connection.commit()
        return rows

    async def _mark(
        self, connection: AsyncConnection, published: list[int], set_aside: list[SetAside]
    ) -> None:
        now = datetime.now(UTC)
        async with writer_turn(self._engine):
            for start in range(0, len(published), MARK_CHUNK):
                await connection.execute(
                    update(self._table)
                    .where(
                        _among(
                            connection,
                            self._table.c.position,
                            published[start : start + MARK_CHUNK],
                        )
                    )
                    .values(published_at=now)
                )
            for row in set_aside:
                await connection.execute(
                    update(self._table)
                    .where(self._table.c.position == row.position)
                    .values(failed_at=now, failure_reason=row.reason)
                )
            await connection.commit()
        for row in set_aside:
            self.set_aside_since_start += 1
            log.error(
                "outbox_row_set_aside",
                position=row.position,
                event_id=row.event_id,
                topic=row.topic,
                reason=row.reason,
            )

    async def _hand_over(self, rows: Sequence[Any]) -> list[Any]:
        """Hand every record of `rows` to the producer, in order, without awaiting the
        acknowledgements: per row, the delivery to await, or the refusal it met. The producer
        batches them, and its idempotence keeps their order. It stops at the first row the
        producer did not take for a reason that may pass (`_all_handed_over` is then false)."""
        outcomes: list[Any] = []
        producer = kafka_producer(self._broker)
        for row in rows:
            try:
                headers = envelope_headers(row.payload)
                if producer is not None:  # the same record, without FastStream's per-call work
                    outcomes.append(
                        await producer.send(
                            row.topic,
                            row.payload.encode(),
                            key=row.message_key.encode(),
                            headers=[(name, value.encode()) for name, value in headers.items()],
                        )
                    )
                    continue
                outcomes.append(
                    await self._broker.publish(
                        row.payload.encode(),
                        row.topic,
                        key=row.message_key.encode(),
                        headers=headers,
                        no_confirm=True,
                    )
                )
            except Exception as refusal:
                outcomes.append(refusal)
                if not refused_for_good(refusal):
                    break
        return outcomes

    async def _settle(
        self, rows: Sequence[Any], outcomes: list[Any]
    ) -> tuple[list[int], list[SetAside], BaseException | None]:
        """Await the acknowledgements (acks=all) of what `_hand_over` sent: (positions
        published, rows refused for good, the error that stopped the batch). The batch stops
        at the first row the broker did not take for a reason that may pass: that row and
        the ones after it stay pending, and are sent again (consumers drop what they already
        have)."""
        published: list[int] = []
        set_aside: list[SetAside] = []
        stopped: BaseException | None = None
        for row, outcome in zip(rows, outcomes, strict=False):
            failure: BaseException | None = outcome if isinstance(outcome, BaseException) else None
            if failure is None:
                try:
                    await outcome
                except Exception as delivery_error:
                    failure = delivery_error
            if stopped is not None:
                continue  # sent after the stop: it goes again with the rest
            if failure is None:
                published.append(row.position)
            elif refused_for_good(failure):
                reason = f"{type(failure).__name__}: {failure}"[:FAILURE_REASON_MAX_LENGTH]
                set_aside.append(SetAside(row.position, row.event_id, row.topic, reason))
            else:
                stopped = failure
        return published, set_aside, stopped

    async def prune_published(self) -> int:
        """Delete the rows published longer ago than the retention, oldest first, a chunk per
        transaction; returns how many. Pending and set-aside rows are never touched."""
        table = self._table
        cutoff = datetime.now(UTC) - self._retention
        oldest = (
            select(table.c.position)
            .where(table.c.published_at.is_not(None), table.c.published_at < cutoff)
            .order_by(table.c.position)
            .limit(PRUNE_CHUNK)
            .scalar_subquery()
        )
        deleted = 0
        while True:
            async with writer_turn(self._engine), self._engine.begin() as connection:
                result = await connection.execute(delete(table).where(table.c.position.in_(oldest)))
            deleted += result.rowcount or 0
            if (result.rowcount or 0) < PRUNE_CHUNK:
                return deleted

    async def _prune_when_due(self) -> None:
        """Prune at most every PRUNE_INTERVAL_SECONDS, busy or not, so the table stays bounded
        under a load that never lets the relay idle. A failure waits for the next time."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        try:
            deleted = await self.prune_published()
        except Exception as error:  # the database is away: the loop waits for it anyway
            log.warning("outbox_prune_failed", error=f"{type(error).__name__}: {error}"[:300])
            return
        if deleted:
            log.info("outbox_pruned", deleted=deleted)

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
        """Publish batches until stopped; once `stop` asks, publish until nothing is pending
        (or the broker or database fails), then return."""
        failures = 0
        while True:
            try:
                published = await self.publish_pending()
                failures = 0
                if not self._stopping:
                    await self._prune_when_due()
            except Exception as error:
                # Broker or database away: the rows stay in the outbox and are published on
                # a later round, in order; nothing is lost and nothing is set aside for it.
                failures += 1
                delay = dependency_backoff_seconds(failures)
                description = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                if self._stopping:
                    log.warning("outbox_flush_incomplete", error=description)
                    return
                log.warning(
                    "outbox_waiting",
                    attempt=failures,
                    retry_in_seconds=round(delay, 2),
                    error=description,
                )
                published = 0
                await self._pause(delay)
                continue
            if published:
                continue
            if self._stopping:
                return
            await self._pause(self._poll_interval)

    async def _pause(self, seconds: float) -> None:
        """Until `wake` (a commit, or `stop`) or `seconds` have passed."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run_forever(), name="outbox-relay")

    async def stop(self) -> None:
        """Let the loop finish its batch and publish what is still pending (committed by the
        requests and messages that finished while the service was stopping), for at most
        OUTBOX_FLUSH_SECONDS; never cut a batch short otherwise, since a batch cut between
        publishing and marking is published again."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(OUTBOX_FLUSH_SECONDS):
                await self._task
        except TimeoutError:  # the broker or database is slow: what is left goes next start
            log.warning("outbox_flush_incomplete", error="out of time")
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def pending_count(self) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count())
                .select_from(self._table)
                .where(self._table.c.published_at.is_(None), self._table.c.failed_at.is_(None))
            )
            return int(count or 0)

    async def set_aside(self, *, limit: int = 20) -> tuple[int, list[dict[str, Any]]]:
        """How many rows were set aside, and the latest `limit` of them, newest first."""
        table = self._table
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(table).where(table.c.failed_at.is_not(None))
            )
            rows = (
                await connection.execute(
                    select(*_which_row(table), table.c.failed_at, table.c.failure_reason)
                    .where(table.c.failed_at.is_not(None))
                    .order_by(table.c.position.desc())
                    .limit(limit)
                )
            ).mappings()
            latest = [
                {
                    "position": row["position"],
                    "event_id": row["event_id"],
                    "topic": row["topic"],
                    "failed_at": row["failed_at"].isoformat(),
                    "reason": row["failure_reason"],
                }
                for row in rows
            ]
        return int(count or 0), latest

    async def status(self) -> dict[str, Any]:
        """What `/readyz` shows of the outbox: rows waiting, rows set aside (with the latest
        few and their reasons). A set-aside row does not make the service unready."""
        pending = await self.pending_count()
        count, latest = await self.set_aside(limit=5)
        return {"pending": pending, "set_aside": count, "latest_set_aside": latest}
