"""ticket-core's consumers and clock against the real broker and both databases: commands
from intake run once and are answered, a visitor's reply reopens a ticket, resolved tickets
close themselves, and a command that does not validate is dead-lettered."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.domain.tickets import Ticket
from services.ticket_core.store.ticket_list import TicketFilter
from shared.contracts.envelope import EventEnvelope
from tests.integration.support import VISITOR, create_command, start_ticket_core
from tests.support.kafka_reader import body, header, read_until
from tests.support.waiting import eventually


@pytest.fixture
async def running_core(unstarted_ticket_core: TicketCore) -> TicketCore:
    await start_ticket_core(unstarted_ticket_core)
    return unstarted_ticket_core


async def send(producer: AIOKafkaProducer, topic: str, key: str, value: bytes) -> None:
    await producer.send_and_wait(topic, value, key=key.encode())


async def result_of(kafka: str, command: EventEnvelope, count: int = 1) -> list[dict[str, Any]]:
    records = await read_until(
        kafka,
        "ticket.command-results.v1",
        lambda r: r.key == str(command.id).encode(),
        count=count,
    )
    return [body(record) for record in records]


async def test_a_command_creates_one_linked_ticket_even_when_delivered_three_times(
    running_core: TicketCore, producer: AIOKafkaProducer, kafka: str
) -> None:
    team = await handlers.create_workspace(running_core.unit_of_work(), "Acme", "o@acme.io")
    command = create_command(team.workspace.id, "conv-100", description="Visitor: it broke")
    for _ in range(3):
        await send(producer, "ticket.commands.v1", "conv-100", command.model_dump_json().encode())

    [reply] = await result_of(kafka, command)

    assert reply["type"] == "ticket.command_result"
    assert reply["causation_id"] == str(command.id)
    assert reply["correlation_id"] == command.correlation_id
    assert reply["data"]["outcome"] == "created"
    assert reply["data"]["ticket_number"] == 1
    ticket_id = UUID(reply["data"]["ticket_id"])
    ticket = await handlers.get_ticket(
        running_core.unit_of_work(), team.workspace.id, team.owner.id, ticket_id
    )
    assert ticket.conversation_ids == ["conv-100"]
    [created] = await read_until(
        kafka, "ticket.events.v1", lambda r: r.key == str(ticket_id).encode()
    )
    event = body(created)
    assert event["actor"] == {"type": "visitor", "id": "visitor-7"}
    assert event["correlation_id"] == command.correlation_id
    assert event["causation_id"] == str(command.id)
    page = await handlers.list_tickets(
        running_core.unit_of_work(),
        team.owner.id,
        TicketFilter(workspace_id=team.workspace.id),
    )
    assert len(page.rows) == 1


async def test_a_second_request_for_a_linked_conversation_gets_the_same_ticket(
    running_core: TicketCore, producer: AIOKafkaProducer, kafka: str
) -> None:
    team = await handlers.create_workspace(running_core.unit_of_work(), "Acme", "o@acme.io")
    first = create_command(team.workspace.id, "conv-200")
    second = create_command(team.workspace.id, "conv-200")
    for command in (first, second):
        await send(producer, "ticket.commands.v1", "conv-200", command.model_dump_json().encode())

    [created] = await result_of(kafka, first)
    [again] = await result_of(kafka, second)

    assert created["data"]["outcome"] == "created"
    assert again["data"]["outcome"] == "already_linked"
    assert again["data"]["ticket_id"] == created["data"]["ticket_id"]


@pytest.mark.parametrize(
    ("workspace", "data", "reason"),
    [
        ("unknown", {}, "unknown_workspace"),
        ("known", {"subject": "   "}, "subject_required"),
    ],
)
async def test_a_command_the_rules_refuse_is_answered_with_the_reason(
    running_core: TicketCore,
    producer: AIOKafkaProducer,
    kafka: str,
    workspace: str,
    data: dict[str, Any],
    reason: str,
) -> None:
    team = await handlers.create_workspace(running_core.unit_of_work(), "Acme", "o@acme.io")
    workspace_id = team.workspace.id if workspace == "known" else uuid4()
    command = create_command(workspace_id, "conv-300", **data)
    await send(producer, "ticket.commands.v1", "conv-300", command.model_dump_json().encode())

    [reply] = await result_of(kafka, command)

    assert reply["data"]["outcome"] == "rejected"
    assert reply["data"]["reason"] == reason
    assert reply["data"]["detail"]
    page = await handlers.list_tickets(
        running_core.unit_of_work(),
        team.owner.id,
        TicketFilter(workspace_id=team.workspace.id),
    )
    assert page.rows == []


@pytest.mark.parametrize(
    ("poison", "reason_fragment"),
    [
        (b"not json at all", "invalid message"),
        (json.dumps({"type": "ticket.create_from_conversation"}).encode(), "workspace_id"),
        ("subject-too-long", "subject"),
        ("unknown-type", "unknown command type"),
    ],
)
async def test_a_command_that_does_not_validate_is_dead_lettered_and_the_next_one_runs(
    running_core: TicketCore,
    producer: AIOKafkaProducer,
    kafka: str,
    poison: bytes | str,
    reason_fragment: str,
) -> None:
    team = await handlers.create_workspace(running_core.unit_of_work(), "Acme", "o@acme.io")
    key = f"conv-{uuid4().hex[:8]}"
    if poison == "subject-too-long":
        poison = (
            create_command(team.workspace.id, key, subject="x" * 201).model_dump_json().encode()
        )
    elif poison == "unknown-type":
        bad = create_command(team.workspace.id, key).model_copy(update={"type": "ticket.explode"})
        poison = bad.model_dump_json().encode()
    assert isinstance(poison, bytes)
    good = create_command(team.workspace.id, key)
    await send(producer, "ticket.commands.v1", key, poison)
    await send(producer, "ticket.commands.v1", key, good.model_dump_json().encode())

    [reply] = await result_of(kafka, good)
    [dead] = await read_until(kafka, "ticket.commands.v1.dlq", lambda r: r.key == key.encode())

    assert reply["data"]["outcome"] == "created"
    assert dead.value == poison
    assert reason_fragment in (header(dead, "dead-letter-reason") or "")


async def test_a_visitor_reply_reopens_a_ticket_waiting_on_the_customer(
    running_core: TicketCore, producer: AIOKafkaProducer
) -> None:
    team = await handlers.create_workspace(running_core.unit_of_work(), "Acme", "o@acme.io")
    ws, owner = team.workspace.id, team.owner.id
    waiting = await handlers.create_ticket(
        running_core.unit_of_work(), handlers.CreateTicket(ws, owner, "Waiting", "")
    )
    await handlers.link_conversation(running_core.unit_of_work(), ws, owner, waiting.id, "conv-9")
    await handlers.update_ticket(
        running_core.unit_of_work(),
        handlers.UpdateTicket(ws, owner, waiting.id, {"status": "waiting_on_customer"}),
    )
    reply = EventEnvelope(
        type="conversation.visitor_replied",
        source="intake",
        workspace_id=ws,
        subject="conv-9",
        sequence=2,
        actor=VISITOR,
        data={"conversation_id": "conv-9", "sent_at": datetime.now(UTC).isoformat()},
    )
    for _ in range(2):  # a redelivery changes nothing more
        await send(producer, "intake.conversations.v1", "conv-9", reply.model_dump_json().encode())

    async def reopened() -> Ticket | None:
        ticket = await handlers.get_ticket(running_core.unit_of_work(), ws, owner, waiting.id)
        return ticket if ticket.status == "open" else None

    ticket = await eventually(reopened, what="the ticket to reopen")
    assert ticket.version == 4  # created, linked, waiting, reopened: one write each


async def test_resolved_tickets_close_themselves_after_the_workspace_period(
    ticket_core: TicketCore,
) -> None:
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    ws, owner = team.workspace.id, team.owner.id
    await handlers.set_auto_close(ticket_core.unit_of_work(), ws, owner, 3)
    resolved, active = [
        await handlers.create_ticket(
            ticket_core.unit_of_work(), handlers.CreateTicket(ws, owner, name, "")
        )
        for name in ("Resolved", "Active")
    ]
    await handlers.update_ticket(
        ticket_core.unit_of_work(),
        handlers.UpdateTicket(ws, owner, resolved.id, {"status": "resolved"}),
    )
    now = datetime.now(UTC)

    too_early = await handlers.close_resolved_tickets(
        ticket_core.unit_of_work, now + timedelta(days=2)
    )
    closed = await handlers.close_resolved_tickets(
        ticket_core.unit_of_work, now + timedelta(days=3, minutes=1)
    )
    again = await handlers.close_resolved_tickets(ticket_core.unit_of_work, now + timedelta(days=9))

    assert (too_early, closed, again) == (0, 1, 0)
    ticket = await handlers.get_ticket(ticket_core.unit_of_work(), ws, owner, resolved.id)
    assert ticket.status == "closed"
    untouched = await handlers.get_ticket(ticket_core.unit_of_work(), ws, owner, active.id)
    assert untouched.status == "new"


async def test_a_reply_with_a_header_that_is_not_text_is_dead_lettered_and_the_next_applied(
    running_core: TicketCore, producer: AIOKafkaProducer
) -> None:
    """One message on a single-message subscriber whose header is not UTF-8 (FastStream's
    parser decodes every header) goes to the dead-letter topic; the one behind it is applied."""
    team = await handlers.create_workspace(running_core.unit_of_work(), "Acme", "o@acme.io")
    ws, owner = team.workspace.id, team.owner.id
    waiting = []
    for conversation in ("conv-bad", "conv-good"):
        ticket = await handlers.create_ticket(
            running_core.unit_of_work(), handlers.CreateTicket(ws, owner, conversation, "")
        )
        await handlers.link_conversation(
            running_core.unit_of_work(), ws, owner, ticket.id, conversation
        )
        await handlers.update_ticket(
            running_core.unit_of_work(),
            handlers.UpdateTicket(ws, owner, ticket.id, {"status": "waiting_on_customer"}),
        )
        waiting.append(ticket)

    def reply(conversation: str) -> bytes:
        return (
            EventEnvelope(
                type="conversation.visitor_replied",
                source="intake",
                workspace_id=ws,
                subject=conversation,
                sequence=2,
                actor=VISITOR,
                data={"conversation_id": conversation, "sent_at": datetime.now(UTC).isoformat()},
            )
            .model_dump_json()
            .encode()
        )

    bad = reply("conv-bad")
    for value, headers in ((bad, [("trace", b"\xff\xfe")]), (reply("conv-good"), [])):
        await producer.send_and_wait(
            "intake.conversations.v1", value, key=b"one-partition", headers=headers
        )

    (dead,) = await read_until(
        running_core.settings.kafka_bootstrap_servers,
        "intake.conversations.v1.dlq",
        lambda r: r.value == bad,
    )

    async def reopened() -> Ticket | None:
        ticket = await handlers.get_ticket(running_core.unit_of_work(), ws, owner, waiting[1].id)
        return ticket if ticket.status == "open" else None

    await eventually(reopened, what="the reply behind the bad one applied")
    assert "header 'trace' is not UTF-8 text" in (header(dead, "dead-letter-reason") or "")
    untouched = await handlers.get_ticket(running_core.unit_of_work(), ws, owner, waiting[0].id)
    assert untouched.status == "waiting_on_customer"
