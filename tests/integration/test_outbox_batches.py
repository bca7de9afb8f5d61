"""The outbox relay's batches and pruning: one ticket's events keep their order across many
batches; rows the broker or the relay can never send, anywhere in a batch, are set aside and
the rest go out; published rows are deleted after the retention, and nothing else ever is."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiokafka.errors import RequestTimedOutError
from sqlalchemy import insert, select

from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.settings import TicketCoreSettings
from services.ticket_core.store import tables
from shared.broker import kafka_producer
from shared.contracts.topics import TICKET_EVENTS
from shared.outbox import OutboxRelay
from tests.integration.test_outbox_relay import an_event, row_of
from tests.support.kafka_reader import body, read_until


def _core(kafka: str, url: str, group: str) -> TicketCore:
    return bootstrap_ticket_core(
        TicketCoreSettings(database_url=url, kafka_bootstrap_servers=kafka, consumer_group=group)
    )


async def test_each_tickets_events_keep_their_order_across_batches_and_bad_rows_are_set_aside(
    kafka: str, ticket_core_url: str, fresh_group: str
) -> None:
    core = _core(kafka, ticket_core_url, fresh_group)
    subjects = [str(uuid4()) for _ in range(4)]
    rows: list[dict[str, object]] = []
    bad_ids: set[str] = set()
    for sequence in range(1, 9):
        for subject in subjects:  # interleaved, as concurrent commands commit them
            rows.append(row_of(TICKET_EVENTS.name, an_event(subject, sequence)))
        if sequence in (2, 5):
            # Never sendable: over the producer's maximum, and not even JSON.
            too_large = row_of(TICKET_EVENTS.name, an_event(str(uuid4()), 1), padding=1_200_000)
            not_json = {**row_of(TICKET_EVENTS.name, an_event(str(uuid4()), 1)), "payload": "{"}
            rows += [too_large, not_json]
            bad_ids |= {str(too_large["event_id"]), str(not_json["event_id"])}
    async with core.engine.begin() as connection:
        await connection.execute(insert(tables.outbox), rows)
    # Batches of 5 rows: every ticket's events and both bad rows span several batches.
    relay = OutboxRelay(core.engine, core.broker, tables.outbox, batch_size=5)
    await core.broker.start()
    try:
        # The relay hands records straight to the broker's producer (its shortcut past
        # FastStream's per-message publish); a FastStream upgrade that moves it shows here.
        assert kafka_producer(core.broker) is not None
        rounds = []
        while handled := await relay.publish_pending():
            rounds.append(handled)
        set_aside_count, set_aside = await relay.set_aside(limit=10)
    finally:
        await core.broker.stop()
        await core.engine.dispose()
        await core.read_engine.dispose()

    assert len(rounds) > 1
    assert sum(rounds) == len(rows)
    assert set_aside_count == len(bad_ids) == 4
    assert {row["event_id"] for row in set_aside} == bad_ids
    records = await read_until(
        kafka, TICKET_EVENTS.name, lambda r: r.key.decode() in subjects, count=4 * 8
    )
    for subject in subjects:
        sequences = [body(r)["sequence"] for r in records if r.key.decode() == subject]
        assert sequences == list(range(1, 9))


async def test_pruning_deletes_only_rows_published_longer_ago_than_the_retention(
    ticket_core_url: str,
) -> None:
    core = _core("localhost:1", ticket_core_url, "unused")  # pruning needs no broker
    now = datetime.now(UTC)
    old, recent, pending, set_aside_long_ago = (
        [row_of(TICKET_EVENTS.name, an_event(str(uuid4()), 1)) for _ in range(count)]
        for count in (7, 3, 2, 1)
    )
    old = [{**row, "published_at": now - timedelta(hours=2)} for row in old]
    recent = [{**row, "published_at": now - timedelta(minutes=10)} for row in recent]
    set_aside_long_ago = [
        {**row, "failed_at": now - timedelta(days=30), "failure_reason": "refused"}
        for row in set_aside_long_ago
    ]
    async with core.engine.begin() as connection:
        for batch in (old, recent, pending, set_aside_long_ago):
            await connection.execute(insert(tables.outbox), batch)
    relay = OutboxRelay(core.engine, core.broker, tables.outbox, retention_seconds=3600)
    try:
        assert await relay.prune_published() == len(old)
        assert await relay.prune_published() == 0
        async with core.engine.connect() as connection:
            kept = set((await connection.execute(select(tables.outbox.c.event_id))).scalars())
        assert await relay.pending_count() == len(pending)
    finally:
        await core.engine.dispose()
        await core.read_engine.dispose()

    assert kept == {str(row["event_id"]) for row in [*recent, *pending, *set_aside_long_ago]}


async def test_a_relay_with_no_retention_prunes_what_it_published_and_keeps_the_rest(
    kafka: str, ticket_core_url: str, fresh_group: str
) -> None:
    core = _core(kafka, ticket_core_url, fresh_group)
    published = [row_of(TICKET_EVENTS.name, an_event(str(uuid4()), 1)) for _ in range(3)]
    async with core.engine.begin() as connection:
        await connection.execute(insert(tables.outbox), published)
    relay = OutboxRelay(core.engine, core.broker, tables.outbox, retention_seconds=0)
    await core.broker.start()
    try:
        assert await relay.publish_pending() == 3
        later = row_of(TICKET_EVENTS.name, an_event(str(uuid4()), 1))
        async with core.engine.begin() as connection:
            await connection.execute(insert(tables.outbox), [later])
        assert await relay.prune_published() == 3
        assert await relay.pending_count() == 1
        assert await relay.publish_pending() == 1
    finally:
        await core.broker.stop()
        await core.engine.dispose()
        await core.read_engine.dispose()

    records = await read_until(
        kafka, TICKET_EVENTS.name, lambda r: r.key.decode() == later["message_key"], count=1
    )
    assert json.loads(records[0].value)["id"] == later["event_id"]


async def test_a_batch_that_stops_leaves_the_batch_handed_over_after_it_pending(
    kafka: str, ticket_core_url: str, fresh_group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay hands over the next batch while the broker acknowledges one; when that one
    stops (an acknowledgement lost: the broker may be away), the next is not marked either,
    and the following call publishes both again from the row that stopped, in order."""
    core = _core(kafka, ticket_core_url, fresh_group)
    subject = str(uuid4())
    rows = [row_of(TICKET_EVENTS.name, an_event(subject, sequence)) for sequence in range(1, 13)]
    async with core.engine.begin() as connection:
        await connection.execute(insert(tables.outbox), rows)
    relay = OutboxRelay(core.engine, core.broker, tables.outbox, batch_size=4)
    await core.broker.start()
    try:
        producer = kafka_producer(core.broker)
        assert producer is not None
        send = producer.send
        lost = str(rows[2]["event_id"])  # the third row of the first batch of four
        seen: list[str] = []

        async def send_losing_one_acknowledgement(*args: Any, **kwargs: Any) -> Any:
            delivery = await send(*args, **kwargs)
            event_id = json.loads(args[1])["id"]
            seen.append(event_id)
            if event_id != lost or seen.count(lost) > 1:
                return delivery
            lost_ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            lost_ack.set_exception(RequestTimedOutError())
            return lost_ack

        monkeypatch.setattr(producer, "send", send_losing_one_acknowledgement)
        with pytest.raises(RequestTimedOutError):
            await relay.publish_pending()
        # The second batch was handed over before the first one's acknowledgements came.
        assert str(rows[4]["event_id"]) in seen
        async with core.engine.connect() as connection:
            marked = set(
                (
                    await connection.scalars(
                        select(tables.outbox.c.event_id).where(
                            tables.outbox.c.published_at.is_not(None)
                        )
                    )
                ).all()
            )
        assert marked == {str(row["event_id"]) for row in rows[:2]}
        while await relay.publish_pending():
            pass
        assert await relay.pending_count() == 0
    finally:
        await core.broker.stop()
        await core.engine.dispose()
        await core.read_engine.dispose()

    records = await read_until(
        kafka, TICKET_EVENTS.name, lambda r: r.key.decode() == subject, count=len(rows) + 6
    )
    sequences = [body(record)["sequence"] for record in records]
    # The first batch up to the lost acknowledgement, then what was handed over after it
    # (rows 3 to 8), then again from row 3 on: every event, and the last copies in order.
    assert sequences == [1, 2, *range(3, 9), *range(3, 13)]
