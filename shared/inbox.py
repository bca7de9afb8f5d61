"""Inbox de-duplication: a consumer records each event id it applied, in the same transaction
as the effect, so a redelivered event is recognised and dropped instead of applied twice."""

from uuid import UUID

from sqlalchemy import Column, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import UTCDateTime

INBOX_TABLE = "inbox"


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
    if await was_delivered(session, table, consumer, message_id):
        return False
    await session.execute(insert(table).values(consumer=consumer, message_id=str(message_id)))
    return True


async def was_delivered(
    session: AsyncSession, table: Table, consumer: str, message_id: UUID | str
) -> bool:
    """Whether `consumer` has applied `message_id` (after an IntegrityError, this tells a
    duplicate from a constraint that failed for another reason)."""
    seen = await session.scalar(
        select(table.c.message_id).where(
            table.c.consumer == consumer, table.c.message_id == str(message_id)
        )
    )
    return seen is not None
