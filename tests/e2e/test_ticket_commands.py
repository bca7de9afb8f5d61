"""What other services send ticket-core over Kafka, end to end: a create-from-conversation
command becomes a ticket the dashboard sees, linked to the conversation, with the creation in
its history; the answer arrives on `ticket.command-results.v1`; a visitor's reply reopens a
ticket that waits on them."""

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
from aiokafka import AIOKafkaProducer

from shared.contracts.envelope import Actor, EventEnvelope
from tests.e2e.conftest import System, Workspace
from tests.support.kafka_reader import body, read_until
from tests.support.waiting import eventually

VISITOR = Actor(type="visitor", id="visitor-e2e")


async def publish(kafka: str, topic: str, key: str, message: EventEnvelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, message.model_dump_json().encode(), key=key.encode())
    finally:
        await producer.stop()


async def create_from_conversation(
    system: System, team: Workspace, conversation: str
) -> dict[str, Any]:
    command = EventEnvelope(
        type="ticket.create_from_conversation",
        source="intake",
        workspace_id=team.workspace_id,
        subject=conversation,
        sequence=1,
        correlation_id=f"req-{uuid4()}",
        actor=VISITOR,
        data={
            "conversation_id": conversation,
            "subject": "Where is my order?",
            "description": "visitor: it is late",
        },
    )
    await publish(system.kafka, "ticket.commands.v1", conversation, command)
    [result] = await read_until(
        system.kafka, "ticket.command-results.v1", lambda r: r.key == str(command.id).encode()
    )
    reply: dict[str, Any] = body(result)
    assert reply["causation_id"] == str(command.id)
    assert reply["correlation_id"] == command.correlation_id
    return reply


async def test_a_command_becomes_a_linked_ticket_the_dashboard_sees(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    conversation = f"conv-{uuid4().hex[:10]}"

    reply = await create_from_conversation(system, team, conversation)

    assert reply["data"]["outcome"] == "created"
    ticket_id = reply["data"]["ticket_id"]
    listed = (await gateway.get("/api/v1/tickets", headers=team.auth)).json()
    assert [t["id"] for t in listed["items"]] == [ticket_id]
    assert listed["items"][0]["conversation_ids"] == [conversation]

    async def history() -> list[dict[str, Any]] | None:
        answer = await gateway.get(f"/api/v1/tickets/{ticket_id}/activity", headers=team.auth)
        return answer.json()["items"] or None

    [entry] = await eventually(history, what="the creation in the activity log")
    assert entry["actor"] == {"type": "visitor", "id": "visitor-e2e"}
    assert entry["changes"]["conversation_ids"] == {"from": None, "to": [conversation]}

    again = await create_from_conversation(system, team, conversation)
    assert again["data"]["outcome"] == "already_linked"
    assert again["data"]["ticket_id"] == ticket_id


async def test_a_visitor_reply_reopens_the_ticket_and_says_so_in_its_history(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    conversation = f"conv-{uuid4().hex[:10]}"
    ticket_id = (await create_from_conversation(system, team, conversation))["data"]["ticket_id"]
    waiting = await gateway.patch(
        f"/api/v1/tickets/{ticket_id}",
        json={"status": "waiting_on_customer"},
        headers=team.auth,
    )
    assert waiting.status_code == 200, waiting.text

    await publish(
        system.kafka,
        "intake.conversations.v1",
        conversation,
        EventEnvelope(
            type="conversation.visitor_replied",
            source="intake",
            workspace_id=team.workspace_id,
            subject=conversation,
            sequence=2,
            actor=VISITOR,
            data={"conversation_id": conversation, "sent_at": datetime.now(UTC).isoformat()},
        ),
    )

    async def reopened_in_history() -> dict[str, Any] | None:
        answer = await gateway.get(f"/api/v1/tickets/{ticket_id}/activity", headers=team.auth)
        moves = [e for e in answer.json()["items"] if e["type"] == "ticket.status_changed"]
        return moves[-1] if len(moves) == 2 else None

    entry = await eventually(reopened_in_history, what="the reopening in the activity log")
    assert entry["actor"] == {"type": "system", "id": "customer-reply"}
    assert entry["changes"]["status"] == {"from": "waiting_on_customer", "to": "open"}
    ticket = (await gateway.get(f"/api/v1/tickets/{ticket_id}", headers=team.auth)).json()
    assert ticket["status"] == "open"


async def test_the_auto_close_period_is_a_workspace_setting_for_owners_and_admins(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()

    before = await gateway.get("/api/v1/workspace", headers=team.auth)
    refused = await gateway.patch(
        "/api/v1/workspace", json={"auto_close_after_days": 0}, headers=team.auth
    )

    # An integer as JSON Schema has it: 5.0 is 5; text and booleans are no numbers.
    as_float = await gateway.patch(
        "/api/v1/workspace", json={"auto_close_after_days": 5.0}, headers=team.auth
    )
    not_numbers = [
        await gateway.patch(
            "/api/v1/workspace", json={"auto_close_after_days": value}, headers=team.auth
        )
        for value in ("4", True, 4.5)
    ]
    changed = await gateway.patch(
        "/api/v1/workspace", json={"auto_close_after_days": 3}, headers=team.auth
    )

    assert before.json()["auto_close_after_days"] == 7
    assert as_float.json()["auto_close_after_days"] == 5
    assert [answer.status_code for answer in not_numbers] == [422, 422, 422]
    assert changed.json()["auto_close_after_days"] == 3
    assert refused.status_code == 422
    assert (await gateway.get("/api/v1/workspace", headers=team.auth)).json()[
        "auto_close_after_days"
    ] == 3
