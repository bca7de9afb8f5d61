"""Inbox de-duplication: a consumer records each event id it applied, in the same transaction
as the effect, so a redelivered event is recognised and dropped instead of applied twice.

The de-duplication horizon: an id is remembered for `INBOX_RETENTION_HOURS` (the services'
setting `<PREFIX>_INBOX_RETENTION_HOURS`), after which `prune_inbox` removes it (every service
runs `inbox_pruner`, hourly). A redelivery comes
from what Kafka still holds: offsets that were not committed before a crash or a rebalance
(seconds to minutes old), the outbox relay publishing a row again after a failed mark (the
same), or a consumer group reading a topic again from its earliest offset (its committed
offsets expired or were reset), which can go back as far as the topic's retention (Kafka's
`log.retention.hours`, 7 days by default, which this system's topics keep). The default,
14 days, is twice that, so every message Kafka can still deliver is one the inbox still
knows; set the setting above the topics' retention if that is raised.
"""

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import Column, MetaData, String, Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.background import PeriodicTask
from shared.db import UTCDateTime

log = structlog.get_logger(__name__)

INBOX_TABLE = "inbox"
INBOX_RETENTION_HOURS = 14 * 24
PRUNE_INTERVAL_SECONDS = 3600.0
PRUNE_CHUNK = 5000
# At most this many ids in one `IN (...)` list (SQLite and PostgreSQL both allow far more
# bound parameters; this keeps each statement's plan and memory small).
IDS_PER_STATEMENT = 5000


def define_inbox_table(metadata: MetaData) -> Table:
    return Table(
        INBOX_TABLE,
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("message_id", String(36), primary_key=True),
        Column("processed_at", UTCDateTime(), nullable=False, server_default=func.now()),
    )


async def first_delivery(
    session: AsyncSession, table: Table, consumer: str, message_id: UUID | str
) -> bool:
    """Record `message_id` for `consumer`; False when it was already recorded.

    Call inside the transaction that stores the effect. Two replicas racing on the same
    message both pass the check, but the primary key lets only one commit; the loser's
    IntegrityError is a duplicate, which the consumer treats the same way.
    """
    return bool(await first_deliveries(session, table, consumer, [message_id]))


async def first_deliveries(
    session: AsyncSession, table: Table, consumer: str, message_ids: Iterable[UUID | str]
) -> set[str]:
    """Of `message_ids`, those `consumer` has never applied, now recorded as applied (each
    once, however often it is given): one bulk `INSERT ... ON CONFLICT DO NOTHING RETURNING`,
    whose returned ids are the new ones.

    The same guarantees as `first_delivery`, for a whole batch in one transaction; a replica
    recording the same id concurrently waits for the other's commit (the primary key), and
    then finds the id taken.
    """
    wanted = list(dict.fromkeys(str(message_id) for message_id in message_ids))
    if not wanted:
        return set()
    connection = await session.connection()
    # The ids go as one parameter (an array, a JSON list): a statement of a thousand rows'
    # parameters was prepared and planned anew per batch, and SQLAlchemy's multi-row
    # RETURNING (insertmanyvalues) cost more Python per id than the insert itself.
    into = f"INSERT INTO {table.name} (consumer, message_id)"
    new_only = "ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id"
    if connection.dialect.name == "postgresql":
        statement = f"{into} SELECT $1::varchar, unnest($2::varchar[]) {new_only}"
        ids: Any = wanted
    else:
        # `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
        statement = f"{into} SELECT ?, value FROM json_each(?) WHERE true {new_only}"
        ids = json.dumps(wanted)
    result = await connection.exec_driver_sql(statement, (consumer, ids))
    return {message_id for (message_id,) in result}


async def delivered(
    session: AsyncSession, table: Table, consumer: str, message_ids: Iterable[UUID | str]
) -> set[str]:
    """Which of `message_ids` `consumer` has applied (read only)."""
    wanted = [str(message_id) for message_id in message_ids]
    seen: set[str] = set()
    for start in range(0, len(wanted), IDS_PER_STATEMENT):
        chunk = wanted[start : start + IDS_PER_STATEMENT]
        seen.update(
            (
                await session.scalars(
                    select(table.c.message_id).where(
                        table.c.consumer == consumer, table.c.message_id.in_(chunk)
                    )
                )
            ).all()
        )
    return seen


async def was_delivered(
    session: AsyncSession, table: Table, consumer: str, message_id: UUID | str
) -> bool:
    """Whether `consumer` has applied `message_id` (after an IntegrityError, this tells a
    duplicate from a constraint that failed for another reason)."""
    return bool(await delivered(session, table, consumer, [message_id]))


async def prune_inbox(
    session_factory: async_sessionmaker[AsyncSession], table: Table, recorded_before: datetime
) -> int:
    """Forget the ids recorded before `recorded_before` (the end of the de-duplication
    horizon, see the module's docstring), `PRUNE_CHUNK` at a time, each chunk its own short
    transaction (on SQLite the write lock is never held for long); how many were removed."""
    removed = 0
    while True:
        async with session_factory() as session, session.begin():
            keys = (
                await session.execute(
                    select(table.c.consumer, table.c.message_id)
                    .where(table.c.processed_at < recorded_before)
                    .limit(PRUNE_CHUNK)
                )
            ).all()
            by_consumer: dict[str, list[str]] = {}
            for consumer, message_id in keys:
                by_consumer.setdefault(consumer, []).append(message_id)
            for consumer, message_ids in by_consumer.items():
                await session.execute(
                    delete(table).where(
                        table.c.consumer == consumer, table.c.message_id.in_(message_ids)
                    )
                )
        removed += len(keys)
        if len(keys) < PRUNE_CHUNK:
            return removed


def inbox_pruner(
    session_factory: async_sessionmaker[AsyncSession],
    table: Table,
    retention: timedelta,
    *,
    interval_seconds: float = PRUNE_INTERVAL_SECONDS,
) -> PeriodicTask:
    """Prunes the inbox every `interval_seconds` (first at the start), keeping `retention`."""

    async def prune_once() -> None:
        removed = await prune_inbox(session_factory, table, datetime.now(UTC) - retention)
        if removed:
            hours = retention / timedelta(hours=1)
            log.info("inbox_pruned", removed=removed, retention_hours=hours)

    return PeriodicTask("inbox-pruner", interval_seconds, prune_once)
