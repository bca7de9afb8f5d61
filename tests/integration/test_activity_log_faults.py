"""activity-log under faults, against the real broker and both databases: stopped while
events are produced, two replicas in one group, event types and versions it does not know."""

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from services.activity_log.bootstrap import ActivityLog
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store import tables
from shared.broker import stop_broker
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from tests.support.kafka_reader import start_group_at_end
from tests.support.waiting import eventually


@pytest.fixture
async def producer(kafka: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def group(kafka: str) -> str:
    name = f"activity-faults-{uuid4()}"
    await start_group_at_end(kafka, name, TICKET_EVENTS)
    return name


def replica(kafka: str, database_url: str, group: str) -> ActivityLog:
    return bootstrap_activity_log(
        ActivityLogSettings(
            database_url=database_url, kafka_bootstrap_servers=kafka, consumer_group=group
        )
    )


def events_for(
    workspace: UUID, tickets: int, per_ticket: int, first: int = 1
) -> list[EventEnvelope]:
    subjects = [str(uuid4()) for _ in range(tickets)]
    return [
        EventEnvelope(
            type="ticket.created" if n == 1 else "ticket.edited",
            source="ticket-core",
            workspace_id=workspace,
            subject=subject,
            sequence=n,
            actor=Actor(type="member", id="m-1"),
            data={"changes": {"subject": {"from": None, "to": f"v{n}"}}},
        )
        for subject in subjects
        for n in range(first, first + per_ticket)
    ]


async def publish(producer: AIOKafkaProducer, events: list[EventEnvelope]) -> None:
    for event in events:
        await producer.send(
            "ticket.events.v1", event.model_dump_json().encode(), key=event.subject.encode()
        )
    await producer.flush()


async def stored(service: ActivityLog, workspace: UUID) -> tuple[int, int]:
    """(entries, distinct event ids) of this workspace."""
    entries = tables.activity_entries
    async with service.engine.connect() as connection:
        row = (
            await connection.execute(
                select(func.count(), func.count(func.distinct(entries.c.event_id))).where(
                    entries.c.workspace_id == workspace
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_two_replicas_in_one_group_store_every_event_exactly_once(
    kafka: str, activity_log_url: str, group: str, producer: AIOKafkaProducer
) -> None:
    workspace = uuid4()
    first, second = replica(kafka, activity_log_url, group), replica(kafka, activity_log_url, group)
    await first.broker.start()
    await second.broker.start()
    try:
        events = events_for(workspace, tickets=30, per_ticket=6)
        await publish(producer, [*events, *events[::7]])  # with some redeliveries

        async def all_in() -> bool:
            return (await stored(first, workspace))[0] >= len(events)

        await eventually(all_in, timeout=60, what="every event stored")
    finally:
        await stop_broker(first.broker)
        await stop_broker(second.broker)
    assert await stored(first, workspace) == (len(events), len(events))
    await first.engine.dispose()
    await second.engine.dispose()


async def test_events_produced_while_activity_log_is_down_are_stored_after_restart(
    kafka: str, activity_log_url: str, group: str, producer: AIOKafkaProducer
) -> None:
    workspace = uuid4()
    before = events_for(workspace, tickets=10, per_ticket=3)
    service = replica(kafka, activity_log_url, group)
    await service.broker.start()
    await publish(producer, before)

    async def first_part() -> bool:
        return (await stored(service, workspace))[0] >= len(before)

    await eventually(first_part, what="the events before the stop")
    await stop_broker(service.broker)
    await service.engine.dispose()

    during = events_for(workspace, tickets=10, per_ticket=3)
    await publish(producer, [*during, *before[:5]])  # and a few old ones again
    restarted = replica(kafka, activity_log_url, group)
    await restarted.broker.start()
    try:

        async def everything() -> bool:
            return (await stored(restarted, workspace))[0] >= len(before) + len(during)

        await eventually(everything, what="the events produced while it was down")
    finally:
        await stop_broker(restarted.broker)
    total = len(before) + len(during)
    assert await stored(restarted, workspace) == (total, total)
    await restarted.engine.dispose()


async def test_unknown_types_and_newer_schema_versions_are_kept_not_crashed_on(
    kafka: str, activity_log_url: str, group: str, producer: AIOKafkaProducer
) -> None:
    workspace = uuid4()
    subject = str(uuid4())
    future = [
        EventEnvelope(
            type="ticket.created",
            source="ticket-core",
            workspace_id=workspace,
            subject=subject,
            sequence=1,
            schema_version=3,
            actor=Actor(type="member", id="m-1"),
            data={"changes": {"subject": {"from": None, "to": "x"}}, "added_later": {"a": 1}},
        ),
        EventEnvelope(
            type="ticket.teleported",
            source="ticket-core",
            workspace_id=workspace,
            subject=subject,
            sequence=2,
            actor=Actor.system("future"),
            data={"where": "moon"},
        ),
    ]
    service = replica(kafka, activity_log_url, group)
    await service.broker.start()
    try:
        await publish(producer, future)

        async def both() -> bool:
            return (await stored(service, workspace))[0] == 2

        await eventually(both, what="both future events kept")
    finally:
        await stop_broker(service.broker)
        await service.engine.dispose()
