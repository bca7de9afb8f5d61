"""Rebuilding the activity log from `ticket.events.v1` gives the live log back, entry for
entry, on SQLite and PostgreSQL."""

import random
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer

from services.activity_log import handlers
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.entrypoints.rebuild import NotEmpty, rebuild
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store.unit_of_work import UnitOfWork
from shared.broker import stop_broker
from shared.contracts.topics import TICKET_EVENTS
from shared.db import create_engine, create_session_factory
from tests.conftest import NewDatabase
from tests.integration.support import ticket_event
from tests.support.kafka_reader import start_group_at_end
from tests.support.waiting import eventually


async def test_a_rebuild_equals_the_live_log_entry_for_entry(
    kafka: str, activity_log_url: str, new_database: NewDatabase
) -> None:
    workspace = uuid4()
    group = f"live-{uuid4()}"
    await start_group_at_end(kafka, group, TICKET_EVENTS)
    live = bootstrap_activity_log(
        ActivityLogSettings(
            database_url=activity_log_url, kafka_bootstrap_servers=kafka, consumer_group=group
        )
    )
    tickets = [str(uuid4()) for _ in range(5)]
    events = [ticket_event(workspace, ticket, n) for ticket in tickets for n in range(1, 9)]
    random.Random(7).shuffle(events)  # across tickets; each ticket's order is kept below
    events.sort(key=lambda e: (tickets.index(e.subject), e.sequence))
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    await live.broker.start()
    try:
        for event in [*events, events[3], events[10]]:  # two redeliveries
            await producer.send_and_wait(
                "ticket.events.v1", event.model_dump_json().encode(), key=event.subject.encode()
            )

        async def all_stored() -> bool:
            for ticket in tickets:
                if len(await handlers.ticket_history(live.unit_of_work(), workspace, ticket)) < 8:
                    return False
            return True

        await eventually(all_stored, what="the live log to store every event")
    finally:
        await producer.stop()
        await stop_broker(live.broker)

    target = await new_database("rebuilt")
    report = await rebuild(kafka, target)

    engine = create_engine(target)
    rebuilt_uow = create_session_factory(engine)
    try:
        for ticket in tickets:
            live_entries = await handlers.ticket_history(live.unit_of_work(), workspace, ticket)
            rebuilt = await handlers.ticket_history(UnitOfWork(rebuilt_uow), workspace, ticket)
            assert rebuilt == live_entries
            assert [entry.sequence for entry in rebuilt] == list(range(1, 9))
    finally:
        await engine.dispose()
        await live.engine.dispose()
    assert report.applied >= 40
    with pytest.raises(NotEmpty):
        await rebuild(kafka, target)
