"""The outbox relay publishes ticket-core's committed events to the real Kafka broker; a row
the broker refuses for good is set aside and the rows after it go out in order; an event too
large to ever be published is refused before anything is committed."""

import json
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, insert, select

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.entrypoints.http_api import create_app
from services.ticket_core.settings import TicketCoreSettings
from services.ticket_core.store import tables
from services.ticket_core.store.unit_of_work import Causation
from shared.broker import DEAD_LETTER_HEADROOM_BYTES
from shared.contracts.asyncapi import specification
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import TICKET_EVENTS
from shared.outbox import (
    MessageTooLarge,
    configured_max_message_bytes,
    envelope_headers,
    message_size,
    outbox_row,
)
from tests.support.kafka_reader import body, header, read_until
from tests.support.waiting import eventually


async def test_committed_events_reach_the_topic_keyed_by_ticket_and_are_marked_published(
    kafka: str, ticket_core_url: str, fresh_group: str
) -> None:
    core: TicketCore = bootstrap_ticket_core(
        TicketCoreSettings(
            database_url=ticket_core_url, kafka_bootstrap_servers=kafka, consumer_group=fresh_group
        )
    )
    await core.broker.start()
    try:
        created = await handlers.create_workspace(core.unit_of_work(), "Acme", "o@acme.io")
        tickets = [
            await handlers.create_ticket(
                core.unit_of_work(),
                handlers.CreateTicket(
                    workspace_id=created.workspace.id,
                    actor_id=created.owner.id,
                    subject=f"Ticket {i}",
                    description="",
                ),
            )
            for i in range(3)
        ]

        published = await core.relay.publish_pending()

        assert published == 4  # the owner's member.added, then three ticket.created
        assert await core.relay.pending_count() == 0
        assert await core.relay.publish_pending() == 0  # nothing is sent twice
    finally:
        await core.broker.stop()
        await core.engine.dispose()

    ids = {str(t.id) for t in tickets}
    records = await read_until(kafka, "ticket.events.v1", lambda r: r.key.decode() in ids, count=3)
    for record in records:
        event = body(record)
        assert record.key.decode() == event["subject"]
        assert event["type"] == "ticket.created"
        assert UUID(event["workspace_id"]) == created.workspace.id
        assert header(record, "event-type") == "ticket.created"
        assert header(record, "event-id") == event["id"]
    async with core.session_factory() as session:
        marks = (await session.execute(select(tables.outbox.c.published_at))).scalars().all()
    assert all(mark is not None for mark in marks)


@pytest.fixture
async def small_message_topic(kafka: str) -> AsyncIterator[str]:
    """A topic of the test's own whose broker-side limit is 2,000 bytes: the broker refuses
    a larger record (the producer, whose limit is the system's, sends it)."""
    name = f"test.small-messages.{uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs={"max.message.bytes": "2000"})]
        )
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


def an_event(subject: str, sequence: int, **data: object) -> EventEnvelope:
    return EventEnvelope(
        type="ticket.edited",
        source="ticket-core",
        workspace_id=uuid4(),
        subject=subject,
        sequence=sequence,
        actor=Actor(type="member", id="m-1"),
        data=dict(data),
    )


def row_of(topic: str, event: EventEnvelope, padding: int = 0) -> dict[str, object]:
    """An outbox row written straight to the table, as an older version (or a larger
    KAFKA_MAX_MESSAGE_BYTES) could have: `padding` bytes more in its data than the limit
    of outbox_row allows."""
    payload = event.model_dump(mode="json")
    payload["data"]["padding"] = "x" * padding
    return {
        "event_id": str(event.id),
        "topic": topic,
        "message_key": event.subject,
        "payload": json.dumps(payload),
    }


async def test_a_row_the_broker_refuses_is_set_aside_with_its_reason_and_later_rows_go_out_in_order(
    kafka: str, ticket_core_url: str, fresh_group: str, small_message_topic: str
) -> None:
    core: TicketCore = bootstrap_ticket_core(
        TicketCoreSettings(
            database_url=ticket_core_url, kafka_bootstrap_servers=kafka, consumer_group=fresh_group
        )
    )
    subject = str(uuid4())
    events = [an_event(subject, n) for n in range(1, 6)]
    too_large = an_event(str(uuid4()), 1)
    refused_by_topic = an_event(str(uuid4()), 1)
    async with core.engine.begin() as connection:
        await connection.execute(
            insert(tables.outbox),
            [
                row_of(TICKET_EVENTS.name, events[0]),
                # 1.2 MB: over the producer's max_request_size (= KAFKA_MAX_MESSAGE_BYTES).
                row_of(TICKET_EVENTS.name, too_large, padding=1_200_000),
                row_of(TICKET_EVENTS.name, events[1]),
                # 5 kB: the producer sends it; the topic's max.message.bytes refuses it.
                row_of(small_message_topic, refused_by_topic, padding=5_000),
                *(row_of(TICKET_EVENTS.name, event) for event in events[2:]),
            ],
        )
    await core.broker.start()
    try:
        assert await core.relay.publish_pending() == 7
        assert await core.relay.pending_count() == 0
        assert await core.relay.publish_pending() == 0  # set aside for good: never retried
        assert core.relay.set_aside_since_start == 2
        count, latest = await core.relay.set_aside()
        status = await core.relay.status()
    finally:
        await core.broker.stop()
        await core.engine.dispose()

    assert count == 2
    reasons = {row["event_id"]: row["reason"] for row in latest}
    assert reasons.keys() == {str(too_large.id), str(refused_by_topic.id)}
    # The producer refuses the first before sending; the broker answers the second with
    # Kafka's error 10 (MESSAGE_TOO_LARGE).
    assert "max_request_size" in reasons[str(too_large.id)]
    assert reasons[str(refused_by_topic.id)].startswith("MessageSizeTooLargeError: [Error 10]")
    assert status["pending"] == 0
    assert status["set_aside"] == 2
    assert {row["event_id"] for row in status["latest_set_aside"]} == set(reasons)

    # An operator sees them in ticket-core's /readyz, which stays ready.
    settings = TicketCoreSettings(
        database_url=ticket_core_url, kafka_bootstrap_servers=kafka, consumer_group=fresh_group
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://core") as client,
    ):
        # The broker connects in the background once the app has started.
        async def ready_answer() -> httpx.Response | None:
            answer = await client.get("/readyz")
            return answer if answer.status_code == 200 else None

        ready = await eventually(ready_answer, what="ticket-core ready")
    shown = ready.json()["details"]["outbox"]
    assert shown["set_aside"] == 2
    assert {row["event_id"]: row["reason"] for row in shown["latest_set_aside"]} == reasons

    records = await read_until(
        kafka, TICKET_EVENTS.name, lambda r: r.key.decode() == subject, count=5
    )
    assert [body(record)["sequence"] for record in records] == [1, 2, 3, 4, 5]
    async with core.session_factory() as session:
        published = (
            await session.execute(
                select(tables.outbox.c.event_id).where(tables.outbox.c.published_at.is_not(None))
            )
        ).scalars()
        assert set(published) == {str(event.id) for event in events}


async def test_an_event_too_large_for_a_message_is_refused_before_anything_is_committed(
    ticket_core_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The smallest maximum the setting allows; a 20,000-character description of four-byte
    # characters is an 80 kB event.
    monkeypatch.setenv("KAFKA_MAX_MESSAGE_BYTES", "65536")
    configured_max_message_bytes.cache_clear()
    core = bootstrap_ticket_core(TicketCoreSettings(database_url=ticket_core_url))
    try:
        team = await handlers.create_workspace(core.unit_of_work(), "Acme", "o@acme.io")
        rows_before = await core.relay.pending_count()

        with pytest.raises(MessageTooLarge) as refused:
            await handlers.create_ticket(
                core.unit_of_work(),
                handlers.CreateTicket(
                    workspace_id=team.workspace.id,
                    actor_id=team.owner.id,
                    subject="Huge",
                    description="\U0001f600" * 20_000,
                ),
            )

        assert "over the limit of 61440 bytes" in str(refused.value)
        assert "KAFKA_MAX_MESSAGE_BYTES" in str(refused.value)
        async with core.session_factory() as session:
            assert await session.scalar(select(func.count()).select_from(tables.tickets)) == 0
        assert await core.relay.pending_count() == rows_before
        ok = await handlers.create_ticket(
            core.unit_of_work(),
            handlers.CreateTicket(
                workspace_id=team.workspace.id,
                actor_id=team.owner.id,
                subject="Small",
                description="",
            ),
        )
        assert ok.number == 1
        assert await core.relay.pending_count() == rows_before + 1
    finally:
        configured_max_message_bytes.cache_clear()
        await core.engine.dispose()
        await core.read_engine.dispose()


def test_outbox_row_takes_an_event_up_to_the_limit_and_refuses_one_byte_more() -> None:
    event = an_event(str(uuid4()), 1, text="a" * 10_000)
    size = message_size(
        event.subject, event.model_dump_json(), envelope_headers(event.model_dump_json())
    )
    exact = size + DEAD_LETTER_HEADROOM_BYTES

    row = outbox_row("ticket.events.v1", event, max_message_bytes=exact)

    assert row["payload"] == event.model_dump_json()
    with pytest.raises(MessageTooLarge, match=f"would be a {size}-byte message"):
        outbox_row("ticket.events.v1", event, max_message_bytes=exact - 1)


async def test_published_headers_are_what_the_asyncapi_document_says(
    kafka: str, ticket_core_url: str, fresh_group: str
) -> None:
    """Read from the topic as any subscriber would: `correlation_id` is the request's id (the
    envelope's), not one FastStream made up; `content-type` is JSON; every header the
    document lists is there, and no other."""
    core: TicketCore = bootstrap_ticket_core(
        TicketCoreSettings(
            database_url=ticket_core_url, kafka_bootstrap_servers=kafka, consumer_group=fresh_group
        )
    )
    request_id = f"my-req-{uuid4().hex[:8]}"
    request = Causation(correlation_id=request_id, causation_id=request_id)
    await core.broker.start()
    try:
        created = await handlers.create_workspace(core.unit_of_work(), "Acme", "o@acme.io")
        ticket = await handlers.create_ticket(
            core.unit_of_work(request),
            handlers.CreateTicket(
                workspace_id=created.workspace.id,
                actor_id=created.owner.id,
                subject="Headers",
                description="",
            ),
        )
        await core.relay.publish_pending()
    finally:
        await core.broker.stop()
        await core.engine.dispose()

    (record,) = await read_until(
        kafka, TICKET_EVENTS.name, lambda r: r.key.decode() == str(ticket.id), count=1
    )
    event = body(record)
    message = specification()["components"]["messages"][f"{TICKET_EVENTS.name}:Message"]
    documented = message["headers"]
    assert message["correlationId"]["location"] == "$message.header#/correlation_id"
    assert {name for name, _ in record.headers} == set(documented["properties"])
    assert set(documented["required"]) == set(documented["properties"])
    assert header(record, "correlation_id") == request.correlation_id == event["correlation_id"]
    assert header(record, "content-type") == "application/json"
    assert header(record, "event-id") == event["id"]
    assert header(record, "workspace-id") == event["workspace_id"]
