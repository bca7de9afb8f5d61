"""intake's handlers on SQLite and PostgreSQL: one command per request id however often it
arrives, every refusal stored for the admin, outcomes from ticket-core, timeouts, and
conversations that grow."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select

from services.intake import handlers
from services.intake.bootstrap import Intake
from services.intake.store import tables
from shared.contracts.api import Role
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.widget import AssistantTicketSettings, RequestStatus, WidgetTicketRequest

SENT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def widget_request(
    request_id: str = "req-1", conversation_id: str = "conv-1", **extra: Any
) -> WidgetTicketRequest:
    body: dict[str, Any] = {
        "request_id": request_id,
        "assistant_id": "asst-1",
        "conversation": {
            "id": conversation_id,
            "messages": [
                {"role": "visitor", "text": "Where is my parcel?", "sent_at": SENT.isoformat()}
            ],
        },
        "contact": {"name": "Ada", "email": "ada@example.com"},
    }
    body.update(extra)
    return WidgetTicketRequest.model_validate(body)


async def configure(intake: Intake, enabled: bool = True, contact: bool = False) -> UUID:
    workspace = uuid4()
    await handlers.put_settings(
        intake.unit_of_work(),
        workspace,
        uuid4(),
        Role.ADMIN,
        "asst-1",
        AssistantTicketSettings(ticket_creation_enabled=enabled, require_contact_info=contact),
    )
    return workspace


async def outbox(intake: Intake, topic: str) -> list[dict[str, Any]]:
    async with intake.session_factory() as session:
        payloads = (
            await session.scalars(
                select(tables.outbox.c.payload)
                .where(tables.outbox.c.topic == topic)
                .order_by(tables.outbox.c.position)
            )
        ).all()
    return [json.loads(p) for p in payloads]


async def test_a_request_arriving_ten_times_at_once_sends_one_command(intake: Intake) -> None:
    workspace = await configure(intake)

    answers = await asyncio.gather(
        *(
            handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)
            for _ in range(10)
        )
    )

    assert {a.status for a in answers} == {RequestStatus.PENDING}
    [command] = await outbox(intake, "ticket.commands.v1")
    assert command["type"] == "ticket.create_from_conversation"
    assert command["workspace_id"] == str(workspace)
    assert command["correlation_id"] == "req-1"
    assert command["actor"] == {"type": "visitor", "id": "asst-1/conv-1"}
    assert command["data"]["subject"] == "Where is my parcel?"
    assert "Contact: Ada <ada@example.com>" in command["data"]["description"]


async def test_a_refusal_is_answered_the_same_way_every_time_and_kept_for_the_admin(
    intake: Intake,
) -> None:
    workspace = await configure(intake, enabled=False)

    first = await handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)
    again = await handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)

    assert first == again
    assert first.reason == "ticket_creation_disabled"
    assert await outbox(intake, "ticket.commands.v1") == []
    [outcome] = await outbox(intake, "intake.request-outcomes.v1")
    assert outcome["type"] == "ticket_request.rejected"
    assert outcome["data"]["reason"] == "ticket_creation_disabled"
    [listed] = await handlers.list_requests(
        intake.unit_of_work(), workspace, Role.OWNER, "asst-1", RequestStatus.REJECTED, 10
    )
    assert listed.reason == "ticket_creation_disabled"
    assert listed.conversation_id == "conv-1"


async def test_an_unknown_assistants_refusals_are_told_to_the_widget_and_shown_to_no_workspace(
    intake: Intake,
) -> None:
    answer = await handlers.receive_request(
        intake.unit_of_work(), widget_request(assistant_id="asst-typo"), intake.limits
    )
    status = await handlers.request_status(intake.unit_of_work(), answer.request_id)

    # The request belongs to no workspace (it may be another team's widget), so any
    # workspace's admin asking for it is told the assistant is not theirs.
    with pytest.raises(handlers.NotFound):
        await handlers.list_requests(
            intake.unit_of_work(), uuid4(), Role.ADMIN, "asst-typo", None, 10
        )
    assert answer.reason == status.reason == "unknown_assistant"


def result(command_id: str, outcome: str, **data: Any) -> EventEnvelope:
    return EventEnvelope(
        type="ticket.command_result",
        source="ticket-core",
        workspace_id=uuid4(),
        subject=command_id,
        sequence=1,
        actor=Actor.system("test"),
        data={
            "command_id": command_id,
            "command_type": "ticket.create_from_conversation",
            "outcome": outcome,
            **data,
        },
    )


async def test_ticket_cores_answer_completes_the_request_once(intake: Intake) -> None:
    await configure(intake)
    await handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)
    [command] = await outbox(intake, "ticket.commands.v1")
    ticket_id = uuid4()
    answer = result(command["id"], "created", ticket_id=str(ticket_id), ticket_number=7)

    for _ in range(2):  # a redelivered answer changes nothing more
        await handlers.record_command_result(intake.unit_of_work(), answer)

    status = await handlers.request_status(intake.unit_of_work(), "req-1")
    assert (status.status, status.ticket_id, status.ticket_number) == ("created", ticket_id, 7)
    [outcome] = await outbox(intake, "intake.request-outcomes.v1")
    assert outcome["type"] == "ticket_request.created"
    assert outcome["data"]["ticket_number"] == 7


async def test_a_request_ticket_core_never_answers_times_out_and_a_late_answer_corrects_it(
    intake: Intake,
) -> None:
    await configure(intake)
    await handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)
    later = datetime.now(UTC) + timedelta(seconds=intake.limits.request_timeout_seconds + 1)

    assert await handlers.expire_pending(intake.unit_of_work, later, 120) == 1
    timed_out = await handlers.request_status(intake.unit_of_work(), "req-1")
    [command] = await outbox(intake, "ticket.commands.v1")
    await handlers.record_command_result(
        intake.unit_of_work(),
        result(command["id"], "already_linked", ticket_id=str(uuid4()), ticket_number=3),
    )
    corrected = await handlers.request_status(intake.unit_of_work(), "req-1")

    assert (timed_out.status, timed_out.reason) == ("rejected", "ticket_core_timeout")
    assert (corrected.status, corrected.ticket_number, corrected.reason) == ("created", 3, None)
    outcomes = await outbox(intake, "intake.request-outcomes.v1")
    assert [(o["type"], o["sequence"]) for o in outcomes] == [
        ("ticket_request.rejected", 1),
        ("ticket_request.created", 2),
    ]


async def test_later_messages_append_and_a_visitor_reply_on_a_ticket_is_announced(
    intake: Intake,
) -> None:
    workspace = await configure(intake)
    await handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)
    [command] = await outbox(intake, "ticket.commands.v1")
    ticket_id = uuid4()
    await handlers.record_command_result(
        intake.unit_of_work(),
        result(command["id"], "created", ticket_id=str(ticket_id), ticket_number=1),
    )
    later = SENT + timedelta(minutes=5)
    again = widget_request(
        request_id="req-2",
        conversation={
            "id": "conv-1",
            "messages": [
                {"role": "visitor", "text": "Where is my parcel?", "sent_at": SENT.isoformat()},
                {"role": "visitor", "text": "<b>Still</b> nothing", "sent_at": later.isoformat()},
            ],
        },
    )

    await handlers.receive_request(intake.unit_of_work(), again, intake.limits)

    conversation = await handlers.get_conversation(intake.unit_of_work(), workspace, "conv-1")
    assert [m.text for m in conversation.messages] == [
        "Where is my parcel?",
        "<b>Still</b> nothing",
    ]
    assert conversation.ticket_id == ticket_id
    [replied] = await outbox(intake, "intake.conversations.v1")
    assert replied["type"] == "conversation.visitor_replied"
    assert replied["data"]["sent_at"] == later.isoformat()


async def test_a_conversation_of_another_workspace_is_not_found(intake: Intake) -> None:
    await configure(intake)
    await handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)
    try:
        await handlers.get_conversation(intake.unit_of_work(), uuid4(), "conv-1")
    except handlers.NotFound:
        return
    raise AssertionError("another workspace read the conversation")


async def test_a_request_id_reused_by_another_assistant_is_refused_and_changes_nothing(
    intake: Intake,
) -> None:
    await configure(intake)
    first = await handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)

    reused = await handlers.receive_request(
        intake.unit_of_work(), widget_request(assistant_id="asst-other"), intake.limits
    )

    assert first.status == "pending"
    assert (reused.status, reused.reason) == ("rejected", "request_id_reused")
    assert reused.detail
    assert await handlers.request_status(intake.unit_of_work(), "req-1") == first
    assert len(await outbox(intake, "ticket.commands.v1")) == 1


async def test_a_widget_polling_its_request_does_not_wait_for_a_writer(intake: Intake) -> None:
    await configure(intake)
    answer = await handlers.receive_request(intake.unit_of_work(), widget_request(), intake.limits)
    async with intake.engine.connect() as writer:
        # A write transaction left open: on SQLite it holds the database's write lock.
        await writer.execute(tables.ticket_requests.update().values(detail="uncommitted"))

        polled = await asyncio.wait_for(
            handlers.request_status(intake.reader(), answer.request_id),
            timeout=10,  # waiting for the lock would take the 30 s busy timeout
        )
        await writer.rollback()

    assert polled.status == answer.status
