"""activity-log applies what one poll returns as one batch, against the real broker and both
databases: a backlog with two tickets interleaved on one partition, redeliveries and a gap
inside the batch lands whole and in order; a message that can never be processed in the
middle of a batch is dead-lettered alone, and the others of the batch are stored."""

from collections.abc import AsyncIterator, Sequence
from uuid import UUID, uuid4

import pytest
import structlog
from aiokafka import AIOKafkaProducer

from services.activity_log import handlers
from services.activity_log.bootstrap import ActivityLog
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.domain.entries import ActivityEntry
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store.unit_of_work import UnitOfWork
from shared.broker import stop_broker
from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from tests.integration.support import PARTITION, publish_on_one_partition, ticket_event
from tests.support.kafka_reader import header, read_until, start_group_at_end
from tests.support.waiting import eventually


@pytest.fixture
async def activity_log(kafka: str, activity_log_url: str) -> AsyncIterator[ActivityLog]:
    """Not started: each test publishes its backlog first, so that one poll returns it."""
    group = f"activity-batches-{uuid4()}"
    await start_group_at_end(kafka, group, TICKET_EVENTS)
    service = bootstrap_activity_log(
        ActivityLogSettings(
            database_url=activity_log_url, kafka_bootstrap_servers=kafka, consumer_group=group
        )
    )
    yield service
    await stop_broker(service.broker)
    await service.engine.dispose()


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many events each call of the batch handler got."""
    sizes: list[int] = []
    record_events = handlers.record_events

    async def counted(uow: UnitOfWork, events: Sequence[EventEnvelope]) -> int:
        sizes.append(len(events))
        return await record_events(uow, events)

    monkeypatch.setattr(handlers, "record_events", counted)
    return sizes


async def history(service: ActivityLog, workspace: UUID, ticket: str) -> list[ActivityEntry]:
    return await handlers.ticket_history(service.unit_of_work(), workspace, ticket)


async def test_two_interleaved_tickets_with_redeliveries_and_a_gap_land_whole_and_in_order(
    activity_log: ActivityLog, producer: AIOKafkaProducer, batch_sizes: list[int]
) -> None:
    workspace, a, b = uuid4(), str(uuid4()), str(uuid4())
    a1, a2, a3 = (ticket_event(workspace, a, n) for n in (1, 2, 3))
    b1, b2, b3 = (ticket_event(workspace, b, n) for n in (1, 2, 3))
    # b3 comes before b2 (a gap closed within the batch); a1 and b1 come twice.
    await publish_on_one_partition(producer, TICKET_EVENTS.name, [a1, b1, a2, a1, b3, b1, b2, a3])
    await activity_log.broker.start()

    async def both_complete() -> bool:
        return (
            len(await history(activity_log, workspace, a)) == 3
            and len(await history(activity_log, workspace, b)) == 3
        )

    await eventually(both_complete, what="both tickets' three entries")
    assert [e.event_id for e in await history(activity_log, workspace, a)] == [a1.id, a2.id, a3.id]
    assert [e.event_id for e in await history(activity_log, workspace, b)] == [b1.id, b2.id, b3.id]
    assert await handlers.held_back(activity_log.unit_of_work()) == []
    assert max(batch_sizes) > 1, "the backlog was never applied as a batch"


async def test_a_poison_message_mid_batch_is_dead_lettered_alone(
    kafka: str, activity_log: ActivityLog, producer: AIOKafkaProducer, batch_sizes: list[int]
) -> None:
    workspace, ticket = uuid4(), str(uuid4())
    first, second = ticket_event(workspace, ticket, 1), ticket_event(workspace, ticket, 2)
    poison = b'{"type": "ticket.created", "batch": "' + ticket.encode() + b'"}'
    await publish_on_one_partition(producer, TICKET_EVENTS.name, [first, poison, second])
    await activity_log.broker.start()

    async def both() -> bool:
        return len(await history(activity_log, workspace, ticket)) == 2

    await eventually(both, what="the two good events of the batch")
    [dead] = await read_until(kafka, "ticket.events.v1.dlq", lambda r: r.value == poison)
    assert "invalid message" in (header(dead, "dead-letter-reason") or "")
    assert header(dead, "original-partition") == str(PARTITION)
    assert batch_sizes[0] == 2  # both good ones together, without the poison one


async def test_a_failure_of_one_event_mid_batch_stores_the_others_and_dead_letters_it(
    kafka: str, activity_log: ActivityLog, producer: AIOKafkaProducer
) -> None:
    # The middle event's entry id is already taken, with no inbox record of it: the batch's
    # transaction fails on the primary key. Not a duplicate and not the database being away:
    # the batch is applied one event at a time, and only that event is dead-lettered.
    workspace, ticket, other = uuid4(), str(uuid4()), str(uuid4())
    first, second = ticket_event(workspace, ticket, 1), ticket_event(workspace, ticket, 2)
    clash = ticket_event(workspace, other, 1)
    async with activity_log.unit_of_work() as uow:
        await uow.activity.add(
            ActivityEntry.from_event(clash.model_copy(update={"subject": str(uuid4())}))
        )
        await uow.commit()
    await publish_on_one_partition(producer, TICKET_EVENTS.name, [first, clash, second])
    with structlog.testing.capture_logs() as logs:
        await activity_log.broker.start()
        [dead] = await read_until(
            kafka, "ticket.events.v1.dlq", lambda r: r.key is not None and r.key.decode() == other
        )
    assert "IntegrityError" in (header(dead, "dead-letter-reason") or "")

    async def both_stored() -> list[ActivityEntry] | None:
        # The event after the failing one is applied after its dead letter is published.
        entries = await history(activity_log, workspace, ticket)
        return entries if len(entries) == 2 else None

    entries = await eventually(both_stored, what="the batch's two good events")
    assert [entry.event_id for entry in entries] == [first.id, second.id]
    assert await history(activity_log, workspace, other) == []
    assert any(entry["event"] == "batch_failed_applying_one_at_a_time" for entry in logs)
