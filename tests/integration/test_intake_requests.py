"""intake's handlers on SQLite and PostgreSQL: one command per request id however often it
arrives, refusals counted and sampled (never a row each), outcomes from ticket-core,
timeouts, conversations that grow, widget keys, ownership of an assistant id."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select

from services.intake import handlers
from services.intake.bootstrap import Intake
from services.intake.domain.requests import AssistantTaken
from services.intake.store import tables
from services.ticket_core.domain.permissions import capabilities_of
from shared.contracts.api import Role
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.widget import (
    AssistantTicketSettings,
    RequestStatus,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)
from tests.integration.support import configure_assistant

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


KEYS: dict[str, str] = {}


async def configure(
    intake: Intake, enabled: bool = True, contact: bool = False, assistant: str = "asst-1"
) -> UUID:
    workspace, KEYS[assistant] = await configure_assistant(
        intake,
        assistant,
        AssistantTicketSettings(ticket_creation_enabled=enabled, require_contact_info=contact),
    )
    return workspace


async def receive(intake: Intake, request: WidgetTicketRequest, key: str | None = None) -> Any:
    """As the widget sends it: with the assistant's widget key."""
    return await handlers.receive_request(
        intake.unit_of_work(),
        request,
        intake.limits,
        intake.guard,
        key if key is not None else KEYS.get(request.assistant_id, ""),
    )


async def status_of(intake: Intake, request_id: str, assistant: str = "asst-1") -> Any:
    return await handlers.request_status(intake.reader(), request_id, assistant)


async def rows(intake: Intake, table: Any) -> int:
    async with intake.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


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

    answers = await asyncio.gather(*(receive(intake, widget_request()) for _ in range(10)))

    assert {a.status for a in answers} == {RequestStatus.PENDING}
    [command] = await outbox(intake, "ticket.commands.v1")
    assert command["type"] == "ticket.create_from_conversation"
    assert command["workspace_id"] == str(workspace)
    assert command["correlation_id"] == "req-1"
    assert command["actor"] == {"type": "visitor", "id": "asst-1/conv-1"}
    assert command["data"]["subject"] == "Where is my parcel?"
    assert "Contact: Ada <ada@example.com>" in command["data"]["description"]


async def test_concurrent_http_requests_are_decided_together_each_with_its_own_answer(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    await configure(intake)
    group_sizes: list[int] = []
    receive_requests = handlers.receive_requests

    async def counted(uow: Any, calls: Any, *args: Any) -> Any:
        group_sizes.append(len(calls))
        return await receive_requests(uow, calls, *args)

    monkeypatch.setattr(handlers, "receive_requests", counted)
    calls = [(widget_request(f"req-{n}", f"conv-{n}"), KEYS["asst-1"]) for n in range(8)]
    calls += [(widget_request("req-0", "conv-0"), KEYS["asst-1"])]  # the same id again
    calls += [(widget_request("req-nokey", "conv-9"), "wk_wrong")]

    answers = await asyncio.gather(
        *(intake.request_groups.receive(request, key) for request, key in calls)
    )

    assert max(group_sizes) > 1, "the concurrent requests were never decided together"
    assert [(a.request_id, a.status, a.reason) for a in answers] == [
        *((f"req-{n}", RequestStatus.PENDING, None) for n in range(8)),
        ("req-0", RequestStatus.PENDING, None),
        ("req-nokey", RequestStatus.REJECTED, "invalid_widget_key"),
    ]
    assert [c["correlation_id"] for c in await outbox(intake, "ticket.commands.v1")] == [
        f"req-{n}" for n in range(8)
    ]


async def test_a_request_that_fails_its_group_fails_alone(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    await configure(intake)
    receive_requests = handlers.receive_requests

    async def failing(uow: Any, calls: Any, *args: Any) -> Any:
        if any(request.request_id == "req-bug" for request, _ in calls):
            raise RuntimeError("a bug this request meets")
        return await receive_requests(uow, calls, *args)

    monkeypatch.setattr(handlers, "receive_requests", failing)
    ids = ["req-1", "req-bug", "req-2"]

    answers = await asyncio.gather(
        *(
            intake.request_groups.receive(widget_request(i, f"conv-{i}"), KEYS["asst-1"])
            for i in ids
        ),
        return_exceptions=True,
    )

    first, bug, second = answers
    assert isinstance(bug, RuntimeError)
    assert isinstance(first, WidgetRequestAnswer)
    assert isinstance(second, WidgetRequestAnswer)
    assert (first.request_id, first.status) == ("req-1", RequestStatus.PENDING)
    assert (second.request_id, second.status) == ("req-2", RequestStatus.PENDING)
    assert await rows(intake, tables.ticket_requests) == 2


async def test_a_refusal_is_answered_the_same_way_every_time_and_sampled_for_the_admin(
    intake: Intake,
) -> None:
    workspace = await configure(intake, enabled=False)

    first = await receive(intake, widget_request())
    again = await receive(intake, widget_request())
    await handlers.flush_refusals(intake.unit_of_work, intake.guard, intake.limits)

    assert first == again
    assert first.reason == "ticket_creation_disabled"
    # Nothing stored as a request, nothing in the outbox: counted and sampled only.
    assert await rows(intake, tables.ticket_requests) == 0
    assert await rows(intake, tables.outbox) == 1  # the settings change, nothing more
    listed = await handlers.list_requests(
        intake.unit_of_work(),
        workspace,
        capabilities_of(Role.OWNER),
        "asst-1",
        RequestStatus.REJECTED,
        10,
    )
    assert [(r.reason, r.conversation_id) for r in listed] == [
        ("ticket_creation_disabled", "conv-1")
    ] * 2
    counts = await handlers.refusal_counts(
        intake.reader(), workspace, capabilities_of(Role.OWNER), "asst-1", 5
    )
    assert counts.totals == {"ticket_creation_disabled": 2}
    assert (await status_of(intake, "req-1")).reason == "ticket_creation_disabled"


async def test_an_unknown_assistants_refusals_are_counted_for_nobody(intake: Intake) -> None:
    answer = await receive(intake, widget_request(assistant_id="asst-typo"), key="wk_x")
    await handlers.flush_refusals(intake.unit_of_work, intake.guard, intake.limits)

    # The request belongs to no workspace (it may be another team's widget), so any
    # workspace's admin asking for it is told the assistant is not theirs.
    with pytest.raises(handlers.NotFound):
        await handlers.list_requests(
            intake.unit_of_work(), uuid4(), capabilities_of(Role.ADMIN), "asst-typo", None, 10
        )
    assert answer.reason == "unknown_assistant"
    assert await rows(intake, tables.refusal_samples) == 0
    assert await rows(intake, tables.ticket_requests) == 0


async def test_a_missing_wrong_or_replaced_key_is_refused_and_the_current_one_works(
    intake: Intake,
) -> None:
    workspace = await configure(intake)
    old_key = KEYS["asst-1"]
    new_key = await handlers.replace_widget_key(
        intake.unit_of_work(), workspace, uuid4(), capabilities_of(Role.OWNER), "asst-1"
    )

    refused = [
        await receive(intake, widget_request(request_id=f"req-{n}"), key=key)
        for n, key in enumerate(["", "wk_guessed", old_key])
    ]
    accepted = await receive(intake, widget_request(request_id="req-ok"), key=new_key)

    assert [r.reason for r in refused] == ["invalid_widget_key"] * 3
    assert "replaced" in (refused[2].detail or "")
    assert accepted.status == "pending"
    assert len(await outbox(intake, "ticket.commands.v1")) == 1
    settings, history = await handlers.get_settings(
        intake.reader(), workspace, capabilities_of(Role.OWNER), "asst-1"
    )
    assert settings.widget_key == new_key
    assert history[0]["changes"] == {"widget_key": {"from": "(replaced)", "to": "(new)"}}
    assert old_key not in json.dumps([dict(h) for h in history], default=str)


async def test_an_assistant_id_configured_by_one_workspace_is_taken_for_every_other(
    intake: Intake,
) -> None:
    await configure(intake)
    other = uuid4()
    change = AssistantTicketSettings(ticket_creation_enabled=False, require_contact_info=True)

    for attempt in (
        handlers.put_settings(
            intake.unit_of_work(), other, uuid4(), capabilities_of(Role.OWNER), "asst-1", change
        ),
        handlers.replace_widget_key(
            intake.unit_of_work(), other, uuid4(), capabilities_of(Role.OWNER), "asst-1"
        ),
        handlers.replace_identity_secret(
            intake.unit_of_work(), other, uuid4(), capabilities_of(Role.OWNER), "asst-1"
        ),
    ):
        with pytest.raises(AssistantTaken):
            await attempt
    with pytest.raises(handlers.NotFound):
        await handlers.get_settings(intake.reader(), other, capabilities_of(Role.OWNER), "asst-1")
    with pytest.raises(handlers.NotFound):
        await handlers.refusal_counts(
            intake.reader(), other, capabilities_of(Role.OWNER), "asst-1", 5
        )
    assert (await receive(intake, widget_request())).status == "pending"


async def test_refusal_samples_stay_bounded_per_assistant_and_counts_add_up(
    intake: Intake,
) -> None:
    workspace = await configure(intake, enabled=False)
    for flush in range(3):
        for number in range(150):
            await receive(intake, widget_request(request_id=f"req-{flush}-{number}"))
        await handlers.flush_refusals(intake.unit_of_work, intake.guard, intake.limits)

    # All 450 counted; sampled at most 20 a minute, so 20 (or 40 across a minute's end).
    assert await rows(intake, tables.refusal_samples) in (20, 40)
    assert await rows(intake, tables.ticket_requests) == 0
    counts = await handlers.refusal_counts(
        intake.reader(), workspace, capabilities_of(Role.OWNER), "asst-1", 5
    )
    assert counts.totals == {"ticket_creation_disabled": 450}
    listed = await handlers.list_requests(
        intake.reader(),
        workspace,
        capabilities_of(Role.OWNER),
        "asst-1",
        RequestStatus.REJECTED,
        500,
    )
    assert len(listed) in (20, 40)
    assert listed == sorted(listed, key=lambda r: r.received_at, reverse=True)


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
    await receive(intake, widget_request())
    [command] = await outbox(intake, "ticket.commands.v1")
    ticket_id = uuid4()
    answer = result(command["id"], "created", ticket_id=str(ticket_id), ticket_number=7)

    for _ in range(2):  # a redelivered answer changes nothing more
        await handlers.record_command_result(intake.unit_of_work(), answer)

    status = await status_of(intake, "req-1")
    assert (status.status, status.ticket_id, status.ticket_number) == ("created", ticket_id, 7)
    [outcome] = await outbox(intake, "intake.request-outcomes.v1")
    assert outcome["type"] == "ticket_request.created"
    assert outcome["data"]["ticket_number"] == 7


async def test_a_request_ticket_core_never_answers_times_out_and_a_late_answer_corrects_it(
    intake: Intake,
) -> None:
    await configure(intake)
    await receive(intake, widget_request())
    later = datetime.now(UTC) + timedelta(seconds=intake.limits.request_timeout_seconds + 1)

    assert await handlers.expire_pending(intake.unit_of_work, later, 120) == 1
    timed_out = await status_of(intake, "req-1")
    [command] = await outbox(intake, "ticket.commands.v1")
    await handlers.record_command_result(
        intake.unit_of_work(),
        result(command["id"], "already_linked", ticket_id=str(uuid4()), ticket_number=3),
    )
    corrected = await status_of(intake, "req-1")

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
    await receive(intake, widget_request())
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

    await receive(intake, again)

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
    await receive(intake, widget_request())
    try:
        await handlers.get_conversation(intake.unit_of_work(), uuid4(), "conv-1")
    except handlers.NotFound:
        return
    raise AssertionError("another workspace read the conversation")


async def test_a_request_id_reused_by_another_assistant_is_refused_and_changes_nothing(
    intake: Intake,
) -> None:
    await configure(intake)
    first = await receive(intake, widget_request())

    await configure(intake, assistant="asst-other")
    reused = await receive(intake, widget_request(assistant_id="asst-other"))

    assert first.status == "pending"
    assert (reused.status, reused.reason) == ("rejected", "request_id_reused")
    assert reused.detail
    assert await status_of(intake, "req-1") == first
    assert len(await outbox(intake, "ticket.commands.v1")) == 1


async def test_a_widget_polling_its_request_does_not_wait_for_a_writer(intake: Intake) -> None:
    await configure(intake)
    answer = await receive(intake, widget_request())
    async with intake.engine.connect() as writer:
        # A write transaction left open: on SQLite it holds the database's write lock.
        await writer.execute(tables.ticket_requests.update().values(detail="uncommitted"))

        polled = await asyncio.wait_for(
            status_of(intake, answer.request_id),
            timeout=10,  # waiting for the lock would take the 30 s busy timeout
        )
        await writer.rollback()

    assert polled.status == answer.status
