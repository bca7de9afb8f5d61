"""activity-log's consumer against the real broker: stores each event once, commits after the
entry is stored, and dead-letters what can never be processed without stopping."""

import json
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer

from services.activity_log.bootstrap import ActivityLog
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.domain.entries import ActivityEntry
from services.activity_log.handlers import ticket_history
from services.activity_log.settings import ActivityLogSettings
from shared.broker import stop_broker
from shared.contracts.envelope import ACTOR_ID_MAX_LENGTH, Actor, EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from tests.support.kafka_reader import header, read_until, start_group_at_end
from tests.support.waiting import eventually


@pytest.fixture
async def activity_log(kafka: str, activity_log_url: str) -> AsyncIterator[ActivityLog]:
    group = f"activity-log-test-{uuid4()}"
    await start_group_at_end(kafka, group, TICKET_EVENTS)
    service = bootstrap_activity_log(
        ActivityLogSettings(
            database_url=activity_log_url, kafka_bootstrap_servers=kafka, consumer_group=group
        )
    )
    await service.broker.start()
    yield service
    await stop_broker(service.broker)
    await service.engine.dispose()


def ticket_event(ticket_id: str, sequence: int, workspace_id: object = None) -> EventEnvelope:
    return EventEnvelope(
        type="ticket.created" if sequence == 1 else "ticket.priority_changed",
        source="ticket-core",
        workspace_id=workspace_id or uuid4(),
        subject=ticket_id,
        sequence=sequence,
        actor=Actor(type="member", id="m-1"),
        data={"changes": {"priority": {"from": None, "to": "high"}}},
    )


async def send(producer: AIOKafkaProducer, key: str, value: bytes) -> None:
    await producer.send_and_wait("ticket.events.v1", value, key=key.encode())


async def test_an_event_becomes_one_entry_even_when_delivered_twice(
    activity_log: ActivityLog, producer: AIOKafkaProducer
) -> None:
    ticket_id = str(uuid4())
    first = ticket_event(ticket_id, 1)
    second = ticket_event(ticket_id, 2, first.workspace_id)
    for event in (first, first, second, first):
        await send(producer, ticket_id, event.model_dump_json().encode())

    async def both_stored() -> list[object] | None:
        entries = await ticket_history(activity_log.unit_of_work(), first.workspace_id, ticket_id)
        return entries if len(entries) >= 2 else None  # type: ignore[return-value]

    entries = await eventually(both_stored, what="two entries")
    assert [(e.sequence, e.event_id) for e in entries] == [(1, first.id), (2, second.id)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("poison", "reason_fragment"),
    [
        (b"{not json", "invalid message"),
        (json.dumps({"type": "ticket.created"}).encode(), "subject"),
        (json.dumps({"hello": "world"}).encode(), "sequence"),
    ],
)
async def test_a_poison_message_is_dead_lettered_with_its_reason_and_the_next_one_still_lands(
    activity_log: ActivityLog, producer: AIOKafkaProducer, poison: bytes, reason_fragment: str
) -> None:
    ticket_id = str(uuid4())
    good = ticket_event(ticket_id, 1)
    # Same key, so the same partition: the good event is behind the poison one.
    await send(producer, ticket_id, poison)
    await send(producer, ticket_id, good.model_dump_json().encode())

    async def stored() -> list[object] | None:
        return await ticket_history(activity_log.unit_of_work(), good.workspace_id, ticket_id)  # type: ignore[return-value]

    [entry] = await eventually(stored, what="the good event's entry")
    [dead] = await read_until(
        activity_log.settings.kafka_bootstrap_servers,
        "ticket.events.v1.dlq",
        lambda r: r.key is not None and r.key.decode() == ticket_id,
    )
    assert dead.value == poison
    reason = header(dead, "dead-letter-reason") or ""
    assert reason_fragment in reason
    assert header(dead, "original-topic") == "ticket.events.v1"
    assert entry.event_id == good.id  # type: ignore[attr-defined]


async def test_an_event_by_a_visitor_with_the_longest_actor_id_is_stored(
    activity_log: ActivityLog, producer: AIOKafkaProducer
) -> None:
    # A ticket made from a widget conversation names its visitor `<assistant>/<conversation>`;
    # the envelope allows 256 characters, and so must the entries table (it allowed 100).
    ticket_id = str(uuid4())
    visitor = "a" * 100 + "/" + "c" * (ACTOR_ID_MAX_LENGTH - 101)
    event = ticket_event(ticket_id, 1).model_copy(
        update={"actor": Actor(type="visitor", id=visitor)}
    )
    await send(producer, ticket_id, event.model_dump_json().encode())

    async def stored() -> list[object] | None:
        return await ticket_history(activity_log.unit_of_work(), event.workspace_id, ticket_id)  # type: ignore[return-value]

    [entry] = await eventually(stored, what="the visitor's entry")
    assert entry.actor == Actor(type="visitor", id=visitor)  # type: ignore[attr-defined]


async def test_a_failed_constraint_that_is_no_redelivery_is_not_dropped_silently(
    activity_log: ActivityLog, producer: AIOKafkaProducer
) -> None:
    # An entry with the event's id already stored, but no inbox record of it: the insert
    # fails on the primary key though the event was never applied. That is not a
    # duplicate, so it must end in the dead-letter topic (to be looked at), not vanish.
    ticket_id = str(uuid4())
    event = ticket_event(ticket_id, 1)
    async with activity_log.unit_of_work() as uow:
        await uow.activity.add(
            ActivityEntry.from_event(event.model_copy(update={"subject": str(uuid4())}))
        )
        await uow.commit()
    await send(producer, ticket_id, event.model_dump_json().encode())

    [dead] = await read_until(
        activity_log.settings.kafka_bootstrap_servers,
        "ticket.events.v1.dlq",
        lambda r: r.key is not None and r.key.decode() == ticket_id,
    )
    assert "IntegrityError" in (header(dead, "dead-letter-reason") or "")
    assert await ticket_history(activity_log.unit_of_work(), event.workspace_id, ticket_id) == []
