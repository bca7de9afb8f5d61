"""The outbox relay publishes ticket-core's committed events to the real Kafka broker."""

from uuid import UUID

from sqlalchemy import select

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.settings import TicketCoreSettings
from services.ticket_core.store import tables
from tests.support.kafka_reader import body, header, read_until


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
