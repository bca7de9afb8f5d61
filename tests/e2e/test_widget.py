"""The chat widget's path, end to end: a visitor's conversation becomes exactly one ticket the
dashboard sees, linked to the conversation it can open; every refusal has a reason the widget
shows and the admin finds again in diagnostics."""

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.e2e.conftest import System, configure_assistant
from tests.support.kafka_reader import header, read_until
from tests.support.waiting import eventually

SENT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC).isoformat()


def body(assistant: str, conversation_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "request_id": f"req-{uuid4()}",
        "assistant_id": assistant,
        "conversation": {
            "id": conversation_id or f"conv-{uuid4().hex[:10]}",
            "messages": [
                {"role": "visitor", "text": "My invoice is wrong <b>again</b>", "sent_at": SENT},
                {"role": "assistant", "text": "I will ask a colleague.", "sent_at": SENT},
            ],
        },
        "contact": {"name": "Ada Lovelace", "email": "ada@example.com"},
    }
    values.update(overrides)
    return values


async def settled(widget: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    """Poll as the widget does; 404 means the request (sent over Kafka) has not arrived yet."""

    async def status() -> dict[str, Any] | None:
        response = await widget.get(f"/widget/v1/ticket-requests/{request_id}")
        if response.status_code == 404:
            return None
        answer: dict[str, Any] = response.json()
        return answer if answer["status"] != "pending" else None

    return await eventually(status, what=f"request {request_id} to settle")


@pytest.fixture
async def widget(system: System) -> Any:
    async with httpx.AsyncClient(base_url=system.widget, timeout=15.0) as client:
        yield client


async def test_a_conversation_becomes_a_linked_ticket_the_dashboard_can_open(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    request = body(assistant)
    conversation = request["conversation"]["id"]

    accepted = await widget.post("/widget/v1/ticket-requests", json=request)

    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {
        "request_id": request["request_id"],
        "status": "pending",
        "ticket_id": None,
        "ticket_number": None,
        "reason": None,
        "detail": None,
    }
    done = await settled(widget, request["request_id"])
    assert done["status"] == "created"
    assert done["ticket_number"] == 1
    ticket = (await gateway.get(f"/api/v1/tickets/{done['ticket_id']}", headers=team.auth)).json()
    assert ticket["conversation_ids"] == [conversation]
    assert ticket["subject"] == "My invoice is wrong <b>again</b>"
    listed = (await gateway.get("/api/v1/tickets", headers=team.auth)).json()
    assert [t["id"] for t in listed["items"]] == [done["ticket_id"]]
    opened = (await gateway.get(f"/api/v1/conversations/{conversation}", headers=team.auth)).json()
    assert [m["text"] for m in opened["messages"]] == [
        "My invoice is wrong <b>again</b>",
        "I will ask a colleague.",
    ]

    async def creation() -> list[dict[str, Any]] | None:
        answer = await gateway.get(
            f"/api/v1/tickets/{done['ticket_id']}/activity", headers=team.auth
        )
        return answer.json()["items"] or None

    [entry] = await eventually(creation, what="the creation in the activity log")
    assert entry["actor"] == {"type": "visitor", "id": f"{assistant}/{conversation}"}


async def test_the_same_request_ten_times_over_http_and_kafka_gives_one_ticket(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    request = body(assistant)
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka, acks="all")
    await producer.start()
    try:
        raw = json.dumps(request).encode()
        answers = await asyncio.gather(
            *(widget.post("/widget/v1/ticket-requests", json=request) for _ in range(10)),
            *(
                producer.send_and_wait(
                    "widget.ticket-requests.v1", raw, key=request["request_id"].encode()
                )
                for _ in range(10)
            ),
        )
    finally:
        await producer.stop()

    http_answers = [a for a in answers if isinstance(a, httpx.Response)]
    assert {a.status_code for a in http_answers} <= {200, 202}
    done = await settled(widget, request["request_id"])
    assert done["status"] == "created"
    listed = (await gateway.get("/api/v1/tickets", headers=team.auth)).json()
    assert [t["id"] for t in listed["items"]] == [done["ticket_id"]]


async def test_a_new_request_on_a_conversation_with_an_open_ticket_gets_that_ticket(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    first = body(assistant)
    second = body(assistant, first["conversation"]["id"])
    await widget.post("/widget/v1/ticket-requests", json=first)
    created = await settled(widget, first["request_id"])

    await widget.post("/widget/v1/ticket-requests", json=second)
    again = await settled(widget, second["request_id"])

    assert again["status"] == "created"
    assert again["ticket_id"] == created["ticket_id"]


REFUSALS = [
    pytest.param(
        {"assistant_id": "asst-nobody-configured"},
        None,
        404,
        "unknown_assistant",
        id="unknown-assistant",
    ),
    pytest.param({}, {"enabled": False}, 403, "ticket_creation_disabled", id="creation-disabled"),
    pytest.param(
        {"contact": None}, {"contact": True}, 422, "contact_info_required", id="contact-missing"
    ),
    pytest.param(
        {"contact": {"name": "Ada"}},
        {"contact": True},
        422,
        "contact_info_required",
        id="email-missing",
    ),
    pytest.param(
        {"contact": {"name": "A", "email": "a@"}}, None, 422, "invalid_contact", id="email-a@"
    ),
    pytest.param(
        {"contact": {"name": "A", "email": "@b.c"}}, None, 422, "invalid_contact", id="email-@b.c"
    ),
    pytest.param(
        {"contact": {"name": "A", "email": "a b@c.d"}},
        None,
        422,
        "invalid_contact",
        id="email-space",
    ),
    pytest.param(
        {"contact": {"name": "x" * 101, "email": "a@b.co"}},
        None,
        422,
        "invalid_contact",
        id="long-name",
    ),
    pytest.param(
        {
            "conversation": {
                "id": "c1",
                "messages": [{"role": "visitor", "text": "x" * 4001, "sent_at": SENT}],
            }
        },
        None,
        413,
        "conversation_too_large",
        id="text-over-limit",
    ),
    pytest.param(
        {
            "conversation": {
                "id": "c2",
                "messages": [{"role": "robot", "text": "hi", "sent_at": SENT}],
            }
        },
        None,
        422,
        "invalid_request",
        id="unknown-role",
    ),
    pytest.param({"request_id": None}, None, 422, "invalid_request", id="missing-request-id"),
    pytest.param({"request_id": "req\x00"}, None, 422, "invalid_request", id="nul-in-request-id"),
    pytest.param(
        {
            "conversation": {
                "id": "c3",
                "messages": [{"role": "visitor", "text": "a\x00b", "sent_at": SENT}],
            }
        },
        None,
        422,
        "invalid_request",
        id="nul-in-text",
    ),
    pytest.param({"assistant_id": None}, None, 422, "invalid_request", id="missing-assistant-id"),
    pytest.param(
        {"conversation": {"messages": []}},
        None,
        422,
        "invalid_request",
        id="missing-conversation-id",
    ),
]


@pytest.mark.parametrize(("overrides", "conf", "status", "reason"), REFUSALS)
async def test_each_refusal_has_its_reason_and_shows_in_diagnostics(
    system: System,
    gateway: httpx.AsyncClient,
    widget: httpx.AsyncClient,
    overrides: dict[str, Any],
    conf: dict[str, bool] | None,
    status: int,
    reason: str,
) -> None:
    team = system.create_workspace()
    conf = conf or {}
    assistant = await configure_assistant(
        gateway, team, enabled=conf.get("enabled", True), contact=conf.get("contact", False)
    )
    request = {
        k: v for k, v in body(assistant, **overrides).items() if v is not None or k == "contact"
    }

    refused = await widget.post("/widget/v1/ticket-requests", json=request)

    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["reason"] == reason
    assert refused.json()["detail"]
    listed = (await gateway.get("/api/v1/tickets", headers=team.auth)).json()
    assert listed["items"] == []
    if reason == "invalid_request":
        return  # not a request at all: nothing to look up later
    looked_up = request["assistant_id"]
    diagnostics = await gateway.get(
        f"/api/v1/assistants/{looked_up}/ticket-requests",
        params={"outcome": "rejected"},
        headers=team.auth,
    )
    if reason == "unknown_assistant":
        # Nobody's assistant: no workspace sees the request (it may be another team's widget),
        # and the widget can still look its refusal up.
        assert diagnostics.status_code == 404, diagnostics.text
        answer = await widget.get(f"/widget/v1/ticket-requests/{request['request_id']}")
        assert answer.json()["reason"] == reason
        return
    assert diagnostics.status_code == 200, diagnostics.text
    [row] = [r for r in diagnostics.json() if r["request_id"] == request["request_id"]]
    assert row["reason"] == reason


async def test_too_many_requests_for_one_conversation_are_rate_limited(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    conversation = f"conv-{uuid4().hex[:8]}"
    answers = [
        await widget.post("/widget/v1/ticket-requests", json=body(assistant, conversation))
        for _ in range(5)
    ]
    assert [a.status_code for a in answers][:4] == [202, 202, 202, 202]
    assert answers[4].status_code == 429
    assert answers[4].json()["reason"] == "rate_limited"


@pytest.mark.parametrize("raw", [b"[1, 2, 3]", b'"just a string"', b"{broken json"])
async def test_a_body_that_is_not_a_json_object_is_refused(
    widget: httpx.AsyncClient, raw: bytes
) -> None:
    refused = await widget.post(
        "/widget/v1/ticket-requests", content=raw, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code in (400, 422)
    assert refused.json()["reason"] == "invalid_request"


async def test_a_poison_message_on_the_widget_topic_is_dead_lettered_and_the_next_one_runs(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    good = body(assistant)
    key = good["request_id"].encode()
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("widget.ticket-requests.v1", b"{not a request", key=key)
        await producer.send_and_wait(
            "widget.ticket-requests.v1", json.dumps(good).encode(), key=key
        )
    finally:
        await producer.stop()

    done = await settled(widget, good["request_id"])
    [dead] = await read_until(system.kafka, "widget.ticket-requests.v1.dlq", lambda r: r.key == key)
    assert done["status"] == "created"
    assert "invalid message" in (header(dead, "dead-letter-reason") or "")


async def test_settings_and_diagnostics_are_for_owners_and_admins_of_the_workspace(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team, other = system.create_workspace(), system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    added = await gateway.post(
        "/api/v1/members",
        json={"email": f"m-{uuid4().hex[:6]}@acme.io", "role": "member"},
        headers=team.auth,
    )
    member_token = system.helpdesk(
        "token", "--workspace", team.workspace_id, "--member", added.json()["id"]
    ).stdout.strip()
    member = {"Authorization": f"Bearer {member_token}"}
    path = f"/api/v1/assistants/{assistant}/ticket-settings"

    assert (await gateway.get(path, headers=member)).status_code == 403
    assert (
        await gateway.put(
            path,
            json={"ticket_creation_enabled": False, "require_contact_info": False},
            headers=member,
        )
    ).status_code == 403
    assert (await gateway.get(path, headers=other.auth)).status_code == 404
    assert (
        await gateway.put(
            path,
            json={"ticket_creation_enabled": False, "require_contact_info": False},
            headers=other.auth,
        )
    ).status_code == 404
    changed = await gateway.put(
        path,
        json={"ticket_creation_enabled": False, "require_contact_info": True},
        headers=team.auth,
    )
    history = changed.json()["history"]
    assert history[0]["changes"] == {
        "ticket_creation_enabled": {"from": True, "to": False},
        "require_contact_info": {"from": False, "to": True},
    }
    assert history[0]["changed_by"] == team.member_id


async def test_a_visitor_writing_again_reopens_a_ticket_that_waits_on_them(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    request = body(assistant)
    conversation = request["conversation"]["id"]
    await widget.post("/widget/v1/ticket-requests", json=request)
    ticket_id = (await settled(widget, request["request_id"]))["ticket_id"]
    waiting = await gateway.patch(
        f"/api/v1/tickets/{ticket_id}", json={"status": "waiting_on_customer"}, headers=team.auth
    )
    assert waiting.status_code == 200, waiting.text

    added = await widget.post(
        f"/widget/v1/conversations/{conversation}/messages",
        json={
            "assistant_id": assistant,
            "messages": [
                {"role": "visitor", "text": "Any news?", "sent_at": datetime.now(UTC).isoformat()}
            ],
        },
    )

    assert added.json() == {"added": 1}

    async def reopened() -> dict[str, Any] | None:
        ticket: dict[str, Any] = (
            await gateway.get(f"/api/v1/tickets/{ticket_id}", headers=team.auth)
        ).json()
        return ticket if ticket["status"] == "open" else None

    await eventually(reopened, what="the ticket to reopen")
    opened = (await gateway.get(f"/api/v1/conversations/{conversation}", headers=team.auth)).json()
    assert opened["messages"][-1]["text"] == "Any news?"


async def test_a_nul_character_in_a_status_lookup_is_refused_not_a_server_error(
    widget: httpx.AsyncClient,
) -> None:
    answer = await widget.get("/widget/v1/ticket-requests/req%00x")

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
