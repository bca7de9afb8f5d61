"""Dead letters, end to end against the real broker and both databases: a message that fails
for a real reason is dead-lettered with it, `helpdesk dlq list` shows it, and after the fix
`helpdesk dlq replay --id` brings it back: applied once (however often it is replayed), and
the events activity-log held behind it are released."""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text

from services.activity_log.bootstrap import ActivityLog
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store import tables
from shared.broker import stop_broker
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from shared.dead_letters import DeadLetter, list_dead_letters
from tests.support.kafka_reader import start_group_at_end
from tests.support.waiting import eventually


@pytest.fixture
async def activity_log(kafka: str, activity_log_url: str) -> AsyncIterator[ActivityLog]:
    group = f"activity-dlq-{uuid4()}"
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


def ticket_event(workspace: UUID, ticket: str, sequence: int) -> EventEnvelope:
    return EventEnvelope(
        type="ticket.created" if sequence == 1 else "ticket.priority_changed",
        source="ticket-core",
        workspace_id=workspace,
        subject=ticket,
        sequence=sequence,
        actor=Actor(type="member", id="m-1"),
        data={"changes": {"priority": {"from": "normal", "to": f"p{sequence}"}}},
    )


async def send(producer: AIOKafkaProducer, event: EventEnvelope) -> None:
    await producer.send_and_wait(
        TICKET_EVENTS.name, event.model_dump_json().encode(), key=event.subject.encode()
    )


def helpdesk(kafka: str, *arguments: str) -> str:
    """Runs the operator's command as a process, as an operator would."""
    done = subprocess.run(
        [sys.executable, "-m", "services", *arguments],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def sequences(service: ActivityLog, ticket: str) -> list[int]:
    entries = tables.activity_entries
    async with service.engine.connect() as connection:
        return list(
            (
                await connection.scalars(
                    select(entries.c.sequence)
                    .where(entries.c.ticket_id == ticket)
                    .order_by(entries.c.sequence)
                )
            ).all()
        )


async def held(service: ActivityLog, ticket: str) -> int:
    async with service.engine.connect() as connection:
        count = await connection.scalar(
            select(func.count())
            .select_from(tables.held_events)
            .where(tables.held_events.c.subject == ticket)
        )
    return int(count or 0)


async def rename_entries_table(service: ActivityLog, old: str, new: str) -> None:
    async with service.engine.begin() as connection:
        await connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_a_dead_letter_is_listed_with_its_reason_and_replayed_once_after_the_fix(
    kafka: str, activity_log: ActivityLog, producer: AIOKafkaProducer
) -> None:
    workspace, ticket = uuid4(), str(uuid4())
    events = [ticket_event(workspace, ticket, n) for n in range(1, 6)]
    await send(producer, events[0])

    async def first_applied() -> bool:
        return await sequences(activity_log, ticket) == [1]

    await eventually(first_applied, what="the ticket's first event")

    # A real failure, not a dependency that is away: an operator's mistake leaves the
    # database without the table entries are written to. Retrying cannot help, so after a
    # few tries the event is dead-lettered with the reason.
    await rename_entries_table(activity_log, "activity_entries", "activity_entries_moved")
    await send(producer, events[1])

    async def dead_letter() -> DeadLetter | None:
        letters = await list_dead_letters(kafka, TICKET_EVENTS.name)
        return next((x for x in letters if x.event_id == str(events[1].id)), None)

    letter = await eventually(dead_letter, what="the event on ticket.events.v1.dlq")
    assert letter.original_topic == TICKET_EVENTS.name
    assert letter.kind == "unexpected"
    assert "activity_entries" in letter.reason

    # The fix; the ticket's later events now wait behind the missing one.
    await rename_entries_table(activity_log, "activity_entries_moved", "activity_entries")
    await send(producer, events[2])
    await send(producer, events[3])

    async def both_held() -> bool:
        return await held(activity_log, ticket) == 2

    await eventually(both_held, what="the later events held behind the gap")
    assert await sequences(activity_log, ticket) == [1]

    listed = await asyncio.to_thread(helpdesk, kafka, "dlq", "list", TICKET_EVENTS.name)
    [line] = [line for line in listed.splitlines() if str(events[1].id) in line]
    assert f"offset={letter.offset} " in line
    assert "type=ticket.priority_changed" in line
    assert (
        f"from={TICKET_EVENTS.name}[{letter.original_partition}]@{letter.original_offset}" in line
    )
    assert f"reason={letter.reason}" in line

    replayed = await asyncio.to_thread(
        helpdesk, kafka, "dlq", "replay", TICKET_EVENTS.dead_letter, "--id", str(events[1].id)
    )
    assert f"replayed offset={letter.offset} event_id={events[1].id}" in replayed
    assert "1 dead letter(s) replayed" in replayed

    async def gap_closed() -> bool:
        return await sequences(activity_log, ticket) == [1, 2, 3, 4]

    await eventually(gap_closed, what="the replayed event and the two held behind it")
    assert await held(activity_log, ticket) == 0

    # Replayed again: dropped by the inbox. The next event of the ticket, on the same
    # partition, shows that the duplicate has been read before it.
    await asyncio.to_thread(
        helpdesk, kafka, "dlq", "replay", TICKET_EVENTS.name, "--id", str(events[1].id)
    )
    await send(producer, events[4])

    async def all_five() -> bool:
        return await sequences(activity_log, ticket) == [1, 2, 3, 4, 5]

    await eventually(all_five, what="the ticket's fifth event")
    entries = tables.activity_entries
    async with activity_log.engine.connect() as connection:
        copies = await connection.scalar(
            select(func.count()).select_from(entries).where(entries.c.event_id == events[1].id)
        )
    assert copies == 1


def test_replaying_an_id_that_is_not_there_says_so_and_publishes_nothing(kafka: str) -> None:
    missing = str(uuid4())
    done = subprocess.run(
        [sys.executable, "-m", "services", "dlq", "replay", TICKET_EVENTS.name, "--id", missing],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"No dead letter with event id {missing}" in done.stderr
    assert "replayed" not in done.stdout
