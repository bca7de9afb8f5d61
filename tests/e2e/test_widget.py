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
from sqlalchemy import func, or_, select, text

from services.intake.domain.widget_access import contact_signature
from services.intake.store import tables as intake_tables
from shared.db import create_engine
from tests.e2e.conftest import Assistant, System, configure_assistant
from tests.support.kafka_reader import header, read_until
from tests.support.waiting import eventually

SENT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC).isoformat()


def body(
    assistant: Assistant, conversation_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "request_id": f"req-{uuid4()}",
        "assistant_id": assistant.id,
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


async def settled(
    widget: httpx.AsyncClient, request_id: str, assistant: Assistant
) -> dict[str, Any]:
    """Poll as the widget does; 404 means the request (sent over Kafka) has not arrived yet."""

    async def status() -> dict[str, Any] | None:
        response = await widget.get(
            f"/widget/v1/ticket-requests/{request_id}", headers=assistant.headers
        )
        if response.status_code == 404:
            return None
        answer: dict[str, Any] = response.json()
        return answer if answer["status"] != "pending" else None

    return await eventually(status, what=f"request {request_id} to settle")


async def stored_counts(system: System, assistant: Assistant | None = None) -> dict[str, int]:
    """What a refusal must not change: intake's requests, conversations, messages and outbox
    rows (of `assistant`, or all), ticket-core's tickets and outbox rows."""
    engine = create_engine(system.env["INTAKE_DATABASE_URL"])
    counts: dict[str, int] = {}
    try:
        async with engine.connect() as connection:
            for name, table in (
                ("requests", intake_tables.ticket_requests),
                ("conversations", intake_tables.conversations),
                ("messages", intake_tables.conversation_messages),
            ):
                query = select(func.count()).select_from(table)
                if assistant is not None:
                    query = query.where(table.c.assistant_id == assistant.id)
                counts[name] = int(await connection.scalar(query) or 0)
            outbox = select(func.count()).select_from(intake_tables.outbox)
            if assistant is not None:
                outbox = outbox.where(
                    or_(
                        intake_tables.outbox.c.payload.contains(assistant.id),
                        intake_tables.outbox.c.message_key.contains(assistant.id),
                    )
                )
            counts["intake_outbox"] = int(await connection.scalar(outbox) or 0)
    finally:
        await engine.dispose()
    counts["tickets"], counts["ticket_core_outbox"] = await system.ticket_core_counts()
    return counts


async def intake_store_bytes(system: System) -> int:
    """How much room intake's database takes: SQLite's pages (the file as the write-ahead
    log will leave it), or the sum of the PostgreSQL tables with their indexes and TOAST."""
    url = system.env["INTAKE_DATABASE_URL"]
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            if url.startswith("sqlite"):
                pages = await connection.scalar(text("PRAGMA page_count"))
                page_size = await connection.scalar(text("PRAGMA page_size"))
                return int(pages or 0) * int(page_size or 0)
            size = await connection.scalar(
                text(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            )
            return int(size or 0)
    finally:
        await engine.dispose()


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

    accepted = await widget.post(
        "/widget/v1/ticket-requests", json=request, headers=assistant.headers
    )

    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {
        "request_id": request["request_id"],
        "status": "pending",
        "ticket_id": None,
        "ticket_number": None,
        "reason": None,
        "detail": None,
    }
    done = await settled(widget, request["request_id"], assistant)
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
    assert entry["actor"] == {"type": "visitor", "id": f"{assistant.id}/{conversation}"}


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
            *(
                widget.post("/widget/v1/ticket-requests", json=request, headers=assistant.headers)
                for _ in range(10)
            ),
            *(
                producer.send_and_wait(
                    "widget.ticket-requests.v1",
                    raw,
                    key=request["request_id"].encode(),
                    headers=[("X-Widget-Key", assistant.widget_key.encode())],
                )
                for _ in range(10)
            ),
        )
    finally:
        await producer.stop()

    http_answers = [a for a in answers if isinstance(a, httpx.Response)]
    assert {a.status_code for a in http_answers} <= {200, 202}
    done = await settled(widget, request["request_id"], assistant)
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
    await widget.post("/widget/v1/ticket-requests", json=first, headers=assistant.headers)
    created = await settled(widget, first["request_id"], assistant)

    await widget.post("/widget/v1/ticket-requests", json=second, headers=assistant.headers)
    again = await settled(widget, second["request_id"], assistant)

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
    before = await stored_counts(system)

    refused = await widget.post(
        "/widget/v1/ticket-requests", json=request, headers=assistant.headers
    )

    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["reason"] == reason
    assert refused.json()["detail"]
    listed = (await gateway.get("/api/v1/tickets", headers=team.auth)).json()
    assert listed["items"] == []
    if reason == "invalid_request":
        return  # not a request at all: nothing to look up later
    looked_up = request["assistant_id"]
    assert await stored_counts(system) == before
    diagnostics = await gateway.get(
        f"/api/v1/assistants/{looked_up}/ticket-requests",
        params={"outcome": "rejected"},
        headers=team.auth,
    )
    if reason == "unknown_assistant":
        # Nobody's assistant: no workspace sees the request (it may be another team's widget),
        # and nothing of it is kept but a count.
        assert diagnostics.status_code == 404, diagnostics.text
        answer = await widget.get(
            f"/widget/v1/ticket-requests/{request['request_id']}", headers=assistant.headers
        )
        assert answer.status_code == 404, answer.text
        return

    async def sampled() -> list[dict[str, Any]] | None:
        # Refusals are counted in memory and written about once a second.
        listed = await gateway.get(
            f"/api/v1/assistants/{looked_up}/ticket-requests",
            params={"outcome": "rejected"},
            headers=team.auth,
        )
        assert listed.status_code == 200, listed.text
        rows = [r for r in listed.json() if r["request_id"] == request["request_id"]]
        return rows or None

    [row] = await eventually(sampled, what="the refusal in the diagnostics")
    assert row["reason"] == reason
    assert row["status"] == "rejected"


async def test_the_widget_reads_its_assistants_settings_with_its_key_only(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team, contact=True)
    answer = await widget.get("/widget/v1/settings", headers=assistant.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "assistant_id": assistant.id,
        "ticket_creation_enabled": True,
        "require_contact_info": True,
        "identity_verification": False,
    }
    wrong = await widget.get(
        "/widget/v1/settings",
        headers={**assistant.headers, "X-Widget-Key": "wk_" + "x" * 40},
    )
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_widget_key"
    missing = await widget.get(
        "/widget/v1/settings", headers={"X-Forwarded-For": assistant.visitor_address}
    )
    assert missing.status_code == 401


async def test_too_many_requests_for_one_conversation_are_rate_limited(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    conversation = f"conv-{uuid4().hex[:8]}"
    answers = [
        await widget.post(
            "/widget/v1/ticket-requests",
            json=body(assistant, conversation),
            headers=assistant.headers,
        )
        for _ in range(5)
    ]
    assert [a.status_code for a in answers][:4] == [202, 202, 202, 202]
    assert answers[4].status_code == 429
    assert answers[4].json()["reason"] == "rate_limited"


@pytest.mark.parametrize("raw", [b"[1, 2, 3]", b'"just a string"', b"{broken json"])
async def test_a_body_that_is_not_a_json_object_is_refused(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient, raw: bytes
) -> None:
    assistant = await configure_assistant(gateway, system.create_workspace())
    refused = await widget.post(
        "/widget/v1/ticket-requests",
        content=raw,
        headers={"Content-Type": "application/json", **assistant.headers},
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
            "widget.ticket-requests.v1",
            json.dumps(good).encode(),
            key=key,
            headers=[("X-Widget-Key", assistant.widget_key.encode())],
        )
    finally:
        await producer.stop()

    done = await settled(widget, good["request_id"], assistant)
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
    path = f"/api/v1/assistants/{assistant.id}/ticket-settings"

    assert (await gateway.get(path, headers=member)).status_code == 403
    assert (
        await gateway.put(
            path,
            json={"ticket_creation_enabled": False, "require_contact_info": False},
            headers=member,
        )
    ).status_code == 403
    assert (await gateway.get(path, headers=other.auth)).status_code == 404
    taken = await gateway.put(
        path,
        json={"ticket_creation_enabled": False, "require_contact_info": False},
        headers=other.auth,
    )
    assert taken.status_code == 409, taken.text
    assert taken.json()["code"] == "assistant_taken"
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
    await widget.post("/widget/v1/ticket-requests", json=request, headers=assistant.headers)
    ticket_id = (await settled(widget, request["request_id"], assistant))["ticket_id"]
    waiting = await gateway.patch(
        f"/api/v1/tickets/{ticket_id}", json={"status": "waiting_on_customer"}, headers=team.auth
    )
    assert waiting.status_code == 200, waiting.text

    added = await widget.post(
        f"/widget/v1/conversations/{conversation}/messages",
        json={
            "assistant_id": assistant.id,
            "messages": [
                {"role": "visitor", "text": "Any news?", "sent_at": datetime.now(UTC).isoformat()}
            ],
        },
        headers=assistant.headers,
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


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param({"ticket_creation_enabled": 0}, "validation_failed", id="zero-for-false"),
        pytest.param({"require_contact_info": "yes"}, "validation_failed", id="text-for-true"),
        pytest.param({"identity_verification": 1}, "validation_failed", id="one-for-true"),
        pytest.param(
            {"allowed_origins": ["https://shop.example/cart"]}, "invalid_origin", id="path"
        ),
        pytest.param({"allowed_origins": ["ftp://shop.example"]}, "invalid_origin", id="scheme"),
        pytest.param({"allowed_origins": ["https://\x16\x1f:/"]}, "invalid_origin", id="no-host"),
        pytest.param(
            {"allowed_origins": ["https://shop.example:70000"]}, "invalid_origin", id="port"
        ),
    ],
)
async def test_settings_other_than_the_document_says_are_refused_and_change_nothing(
    system: System, gateway: httpx.AsyncClient, change: dict[str, Any], code: str
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team, allowed_origins=["https://shop.example"])
    path = f"/api/v1/assistants/{assistant.id}/ticket-settings"
    before = (await gateway.get(path, headers=team.auth)).json()

    answer = await gateway.put(
        path,
        json={"ticket_creation_enabled": True, "require_contact_info": False, **change},
        headers=team.auth,
    )

    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == code
    assert (await gateway.get(path, headers=team.auth)).json() == before


async def test_a_nul_character_in_a_status_lookup_is_refused_not_a_server_error(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    assistant = await configure_assistant(gateway, system.create_workspace())
    answer = await widget.get("/widget/v1/ticket-requests/req%00x", headers=assistant.headers)

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


# -- who may use an assistant's widget ------------------------------------------------------------


def as_visitor(assistant: Assistant, **headers: str | None) -> dict[str, str]:
    """The assistant's widget headers with some replaced (None: left out)."""
    values: dict[str, str | None] = {**assistant.headers, **headers}
    return {name: value for name, value in values.items() if value is not None}


async def assert_created(
    widget: httpx.AsyncClient, assistant: Assistant, **headers: str | None
) -> dict[str, Any]:
    """The next good request of this assistant's widget works, all the way to a ticket."""
    good = body(assistant)
    accepted = await widget.post(
        "/widget/v1/ticket-requests", json=good, headers=as_visitor(assistant, **headers)
    )
    assert accepted.status_code == 202, accepted.text
    done = await settled(widget, good["request_id"], assistant)
    assert done["status"] == "created", done
    return done


def assert_refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == code, problem
    assert problem["detail"]


async def test_missing_wrong_and_replaced_widget_keys_are_refused_on_every_widget_call(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    done = await assert_created(widget, assistant)
    conversation = f"conv-{uuid4().hex[:10]}"
    replaced = await gateway.post(
        f"/api/v1/assistants/{assistant.id}/widget-key", headers=team.auth
    )
    assert replaced.status_code == 200, replaced.text
    new_key = replaced.json()["widget_key"]
    assert new_key != assistant.widget_key
    assert new_key.startswith("wk_")
    settings = await gateway.get(
        f"/api/v1/assistants/{assistant.id}/ticket-settings", headers=team.auth
    )
    assert settings.json()["widget_key"] == new_key
    before = await stored_counts(system, assistant)

    for key, says in (
        (None, "X-Widget-Key header"),
        ("wk_" + "x" * 32, "no assistant's widget key"),
        (assistant.widget_key, "was replaced"),
        ("k" * 5000, "no assistant's widget key"),
    ):
        headers = as_visitor(assistant, **{"X-Widget-Key": key})
        calls = [
            await widget.post("/widget/v1/ticket-requests", json=body(assistant), headers=headers),
            await widget.get(f"/widget/v1/ticket-requests/{done['request_id']}", headers=headers),
            await widget.post(
                f"/widget/v1/conversations/{conversation}/messages",
                json={
                    "assistant_id": assistant.id,
                    "messages": [{"role": "visitor", "text": "hi", "sent_at": SENT}],
                },
                headers=headers,
            ),
        ]
        for answer in calls:
            assert_refused(answer, 401, "invalid_widget_key")
            assert says in answer.json()["detail"]
            assert "ticket_id" not in answer.text

    assert await stored_counts(system, assistant) == before
    await assert_created(widget, Assistant(assistant.id, new_key, assistant.visitor_address))


async def test_a_key_of_one_assistant_does_not_open_another(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    ours, theirs = (
        await configure_assistant(gateway, team),
        await configure_assistant(gateway, system.create_workspace()),
    )
    done = await assert_created(widget, theirs)
    before = await stored_counts(system, theirs)

    posted = await widget.post(
        "/widget/v1/ticket-requests", json=body(theirs), headers=ours.headers
    )
    looked_up = await widget.get(
        f"/widget/v1/ticket-requests/{done['request_id']}", headers=ours.headers
    )

    assert_refused(posted, 401, "invalid_widget_key")
    assert_refused(looked_up, 404, "not_found")
    assert await stored_counts(system, theirs) == before


async def test_a_disallowed_origin_is_refused_and_cors_answers_only_allowed_origins(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    shop = f"https://shop-{uuid4().hex[:8]}.example"
    assistant = await configure_assistant(
        gateway, team, allowed_origins=[shop.upper() + ":443", f"http://localhost:{8080}"]
    )
    settings = await gateway.get(
        f"/api/v1/assistants/{assistant.id}/ticket-settings", headers=team.auth
    )
    assert settings.json()["allowed_origins"] == [shop, "http://localhost:8080"]
    before = await stored_counts(system, assistant)

    for evil in (
        "https://evil.example",
        f"{shop}.evil.example",
        shop.replace("https", "http"),
        "null",
    ):
        refused = await widget.post(
            "/widget/v1/ticket-requests",
            json=body(assistant),
            headers=as_visitor(assistant, Origin=evil),
        )
        assert_refused(refused, 403, "origin_not_allowed")
        assert "access-control-allow-origin" not in refused.headers
    preflight_from_null = await widget.options(
        "/widget/v1/ticket-requests",
        headers={"Origin": "null", "Access-Control-Request-Method": "POST"},
    )
    assert_refused(preflight_from_null, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in preflight_from_null.headers
    assert await stored_counts(system, assistant) == before

    preflight = await widget.options(
        "/widget/v1/ticket-requests",
        headers={
            "Origin": shop,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-widget-key",
        },
    )
    assert preflight.status_code == 204, preflight.text
    assert preflight.headers["access-control-allow-origin"] == shop
    assert "X-Widget-Key" in preflight.headers["access-control-allow-headers"]
    good = body(assistant)
    accepted = await widget.post(
        "/widget/v1/ticket-requests", json=good, headers=as_visitor(assistant, Origin=shop)
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["access-control-allow-origin"] == shop
    assert "Origin" in accepted.headers["vary"]

    async def refusals() -> dict[str, Any] | None:
        answer = await gateway.get(
            f"/api/v1/assistants/{assistant.id}/ticket-request-refusals", headers=team.auth
        )
        assert answer.status_code == 200, answer.text
        counted: dict[str, Any] = answer.json()
        return counted if counted["totals"].get("origin_not_allowed") == 4 else None

    counted = await eventually(refusals, what="the refused origins to be counted")
    assert counted["items"][0]["reason"] == "origin_not_allowed"


async def test_identity_verification_needs_the_signed_email(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    made = await gateway.post(
        f"/api/v1/assistants/{assistant.id}/identity-secret", headers=team.auth
    )
    assert made.status_code == 200, made.text
    secret = made.json()["identity_secret"]
    turned_on = await gateway.put(
        f"/api/v1/assistants/{assistant.id}/ticket-settings",
        json={
            "ticket_creation_enabled": True,
            "require_contact_info": False,
            "identity_verification": True,
        },
        headers=team.auth,
    )
    assert turned_on.status_code == 200, turned_on.text
    assert turned_on.json()["identity_verification"] is True
    assert turned_on.json()["identity_secret_set"] is True
    assert secret not in turned_on.text  # shown once, never again
    before = await stored_counts(system, assistant)
    email = "ada@example.com"
    good_signature = contact_signature(secret, email)

    for contact in (
        {"name": "Ada", "email": email},
        {"name": "Ada", "email": email, "signature": "0" * 64},
        {"name": "Ada", "email": email, "signature": good_signature.upper()},
        {"name": "Ada", "email": "eve@example.com", "signature": good_signature},
        {"name": "Ada", "email": email, "signature": contact_signature("wis_guess", email)},
        None,
    ):
        refused = await widget.post(
            "/widget/v1/ticket-requests",
            json=body(assistant, contact=contact),
            headers=assistant.headers,
        )
        assert_refused(refused, 403, "contact_not_verified")
    assert await stored_counts(system, assistant) == before

    good = body(assistant, contact={"name": "Ada", "email": email, "signature": good_signature})
    accepted = await widget.post("/widget/v1/ticket-requests", json=good, headers=assistant.headers)
    assert accepted.status_code == 202, accepted.text
    assert (await settled(widget, good["request_id"], assistant))["status"] == "created"

    # A new secret: signatures made with the old one are refused at once.
    await gateway.post(f"/api/v1/assistants/{assistant.id}/identity-secret", headers=team.auth)
    stale = await widget.post(
        "/widget/v1/ticket-requests",
        json=body(assistant, contact={"name": "Ada", "email": email, "signature": good_signature}),
        headers=assistant.headers,
    )
    assert_refused(stale, 403, "contact_not_verified")


async def test_another_workspaces_assistant_id_is_taken_and_shows_nothing(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    owner, intruder = system.create_workspace(), system.create_workspace()
    assistant = await configure_assistant(gateway, owner)
    await assert_created(widget, assistant)
    base = f"/api/v1/assistants/{assistant.id}"
    settings_before = (await gateway.get(f"{base}/ticket-settings", headers=owner.auth)).json()
    before = await stored_counts(system, assistant)

    for method, path, payload in (
        (
            "PUT",
            "/ticket-settings",
            {"ticket_creation_enabled": False, "require_contact_info": True},
        ),
        ("POST", "/widget-key", None),
        ("POST", "/identity-secret", None),
    ):
        taken = await gateway.request(method, base + path, json=payload, headers=intruder.auth)
        assert_refused(taken, 409, "assistant_taken")
        assert assistant.widget_key not in taken.text
    for path in ("/ticket-settings", "/ticket-requests", "/ticket-request-refusals"):
        hidden = await gateway.get(base + path, headers=intruder.auth)
        assert_refused(hidden, 404, "not_found")
        assert assistant.widget_key not in hidden.text

    assert (await gateway.get(f"{base}/ticket-settings", headers=owner.auth)).json() == (
        settings_before
    )
    assert await stored_counts(system, assistant) == before
    await assert_created(widget, assistant)


async def test_only_owners_and_admins_replace_keys_and_secrets(
    system: System, gateway: httpx.AsyncClient
) -> None:
    from tests.e2e.conftest import hire

    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    member = await hire(system, gateway, team, "member")
    admin = await hire(system, gateway, team, "admin")
    base = f"/api/v1/assistants/{assistant.id}"

    for path in ("/widget-key", "/identity-secret"):
        assert_refused(await gateway.post(base + path, headers=member.auth), 403, "forbidden")
    assert_refused(
        await gateway.get(f"{base}/ticket-request-refusals", headers=member.auth), 403, "forbidden"
    )
    assert (await gateway.get(f"{base}/ticket-settings", headers=team.auth)).json()[
        "widget_key"
    ] == assistant.widget_key
    assert (await gateway.post(f"{base}/widget-key", headers=admin.auth)).status_code == 200


# -- sizes ----------------------------------------------------------------------------------------

MEGABYTE = "x" * 1_000_000


def with_value(request: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    """`request` with the value at a dotted path (`conversation.messages.0.text`) replaced."""
    copy: dict[str, Any] = json.loads(json.dumps(request))
    node: Any = copy
    *parents, last = where.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copy


WIDGET_FIELDS = [
    "request_id",
    "assistant_id",
    "conversation.id",
    "conversation.messages.0.role",
    "conversation.messages.0.text",
    "conversation.messages.0.sent_at",
    "contact.name",
    "contact.email",
    "contact.signature",
]


@pytest.mark.parametrize("where", WIDGET_FIELDS)
async def test_a_megabyte_in_any_widget_field_is_refused_by_size_and_stalls_nothing(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient, where: str
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    before = await stored_counts(system)
    request = body(assistant)
    request["contact"]["signature"] = "0" * 64

    huge = await widget.post(
        "/widget/v1/ticket-requests",
        json=with_value(request, where, MEGABYTE),
        headers=assistant.headers,
    )
    # Under the body limit too: a field over its own maximum is refused by the field's rule.
    large = await widget.post(
        "/widget/v1/ticket-requests",
        json=with_value(request, where, "y" * 100_000),
        headers=assistant.headers,
    )

    assert_refused(huge, 413, "body_too_large")
    assert large.status_code in (401, 404, 413, 422), large.text
    assert large.json()["code"] in {
        "invalid_request",
        "invalid_conversation",
        "invalid_contact",
        "conversation_too_large",
        "invalid_widget_key",  # a 100 kB assistant_id is no assistant this key opens
    }
    assert len(large.text) < 10_000  # the answer does not echo the value
    assert await stored_counts(system) == before
    await assert_created(widget, assistant)


async def test_one_huge_request_of_an_unknown_assistant_stalls_no_later_request(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    """The issue's case: a 1.2 MB conversation.id for an assistant nobody configured, over
    HTTP and over Kafka; every later request of every workspace is still served."""
    assistant = await configure_assistant(gateway, system.create_workspace())
    huge = body(assistant, assistant_id="asst-nobody", conversation_id="c" * 1_200_000)
    before = await stored_counts(system)

    refused = await widget.post("/widget/v1/ticket-requests", json=huge)
    producer = AIOKafkaProducer(
        bootstrap_servers=system.kafka, acks="all", max_request_size=2_000_000
    )
    await producer.start()
    try:
        for _ in range(2):
            try:
                await producer.send_and_wait(
                    "widget.ticket-requests.v1",
                    json.dumps(with_value(huge, "conversation.id", "c" * 500_000)).encode(),
                    key=b"huge",
                    headers=[("X-Widget-Key", assistant.widget_key.encode())],
                )
            except Exception:  # the broker may refuse it as too large: fine either way
                break
    finally:
        await producer.stop()

    assert_refused(refused, 413, "body_too_large")
    for other in (assistant, await configure_assistant(gateway, system.create_workspace())):
        await assert_created(widget, other)
    after = await stored_counts(system)
    assert after["intake_outbox"] >= before["intake_outbox"]
    assert after["requests"] == before["requests"] + 2  # the two good ones only


async def test_the_messages_path_has_the_same_checks_and_size_caps(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    from tests.e2e.conftest import new_visitor_address

    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team, allowed_origins=["https://shop.example"])
    first = body(assistant)
    conversation = first["conversation"]["id"]
    accepted = await widget.post(
        "/widget/v1/ticket-requests", json=first, headers=assistant.headers
    )
    assert accepted.status_code == 202, accepted.text
    assert (await settled(widget, first["request_id"], assistant))["status"] == "created"
    path = f"/widget/v1/conversations/{conversation}/messages"

    def messages(count: int, text: str = "more") -> dict[str, Any]:
        return {
            "assistant_id": assistant.id,
            "messages": [
                {"role": "visitor", "text": f"{text} {n}", "sent_at": SENT} for n in range(count)
            ],
        }

    before = await stored_counts(system, assistant)
    cases = [
        (
            messages(1),
            as_visitor(assistant, Origin="https://evil.example"),
            403,
            "origin_not_allowed",
        ),
        (messages(1), as_visitor(assistant, **{"X-Widget-Key": None}), 401, "invalid_widget_key"),
        (messages(51), assistant.headers, 413, "conversation_too_large"),
        (messages(1, "x" * 4001), assistant.headers, 413, "conversation_too_large"),
        (
            with_value(messages(1), "messages.0.text", MEGABYTE),
            assistant.headers,
            413,
            "body_too_large",
        ),
        (
            with_value(messages(1), "assistant_id", MEGABYTE),
            assistant.headers,
            413,
            "body_too_large",
        ),
        (
            with_value(messages(1), "assistant_id", "a" * 101),
            assistant.headers,
            422,
            "invalid_request",
        ),
        ({"assistant_id": assistant.id, "messages": []}, assistant.headers, 422, "invalid_request"),
    ]
    for payload, headers, status, code in cases:
        assert_refused(await widget.post(path, json=payload, headers=headers), status, code)
    bad_id = await widget.post(
        "/widget/v1/conversations/-abc/messages", json=messages(1), headers=assistant.headers
    )
    assert_refused(bad_id, 422, "invalid_request")
    assert await stored_counts(system, assistant) == before

    # A conversation keeps at most 1,000 messages, however many calls bring them.
    stored = len(first["conversation"]["messages"])
    for call in range(20):
        visitor = Assistant(assistant.id, assistant.widget_key, new_visitor_address())
        added = await widget.post(path, json=messages(50, f"call {call}"), headers=visitor.headers)
        if stored + 50 > 1000:
            assert_refused(added, 413, "conversation_too_large")
            break
        assert added.status_code == 200, added.text
        stored += 50
    final = await stored_counts(system, assistant)
    assert final["messages"] == stored <= 1000


# -- floods and limits ----------------------------------------------------------------------------


async def test_ten_thousand_refused_requests_grow_the_store_only_a_little(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team, allowed_origins=["https://shop.example"])
    await assert_created(widget, assistant, Origin="https://shop.example")

    async def settled_flushes() -> None:
        await asyncio.sleep(2.5)  # the refusal counts are written about once a second

    await settled_flushes()
    before_counts = await stored_counts(system)
    before_bytes = await intake_store_bytes(system)
    wrong_key = as_visitor(assistant, **{"X-Widget-Key": "wk_" + "z" * 32})
    wrong_origin = as_visitor(assistant, Origin="https://evil.example")
    statuses: dict[int, int] = {}
    queue = list(range(10_000))

    async def flood() -> None:
        while queue:
            number = queue.pop()
            answer = await widget.post(
                "/widget/v1/ticket-requests",
                json=body(assistant),
                headers=wrong_key if number % 2 else wrong_origin,
            )
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

    await asyncio.gather(*(flood() for _ in range(16)))
    await settled_flushes()
    after_bytes = await intake_store_bytes(system)
    growth = after_bytes - before_bytes
    print(
        f"\n[{system.kind}] 10,000 refused widget requests: intake's store grew by "
        f"{growth} bytes ({before_bytes} -> {after_bytes})"
    )

    assert statuses == {401: 5_000, 403: 5_000}
    assert await stored_counts(system) == before_counts
    assert growth < 512 * 1024, growth
    counted = await gateway.get(
        f"/api/v1/assistants/{assistant.id}/ticket-request-refusals", headers=team.auth
    )
    assert counted.json()["totals"] == {"origin_not_allowed": 5_000}
    sample = await gateway.get(
        f"/api/v1/assistants/{assistant.id}/ticket-requests",
        params={"outcome": "rejected", "limit": 500},
        headers=team.auth,
    )
    # Sampled, not stored one each: at most 20 a minute, at most 100 kept.
    assert 1 <= len(sample.json()) <= 100
    assert {row["reason"] for row in sample.json()} == {"origin_not_allowed"}
    await assert_created(widget, assistant, Origin="https://shop.example")


async def test_one_address_over_its_limit_gets_429_and_other_visitors_are_still_served(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    from tests.e2e.conftest import new_visitor_address

    team = system.create_workspace()
    assistant = await configure_assistant(gateway, team)
    no_visitor_words = {
        "id": "c-quiet",
        "messages": [{"role": "assistant", "text": "hello", "sent_at": SENT}],
    }
    answers = [
        await widget.post(
            "/widget/v1/ticket-requests",
            json=body(assistant, conversation=no_visitor_words),
            headers=assistant.headers,
        )
        for _ in range(21)  # INTAKE_RATE_LIMIT_PER_ADDRESS is 20 in the e2e system
    ]

    assert {a.json()["code"] for a in answers[:20]} == {"invalid_conversation"}
    assert_refused(answers[20], 429, "rate_limited")
    assert 1 <= int(answers[20].headers["retry-after"]) <= 60
    await assert_created(widget, assistant, **{"X-Forwarded-For": new_visitor_address()})


async def test_a_stranger_without_the_key_cannot_spend_the_assistants_budget(
    system: System, gateway: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    from tests.e2e.conftest import new_visitor_address

    team = system.create_workspace()
    assistant, neighbour = (
        await configure_assistant(gateway, team),
        await configure_assistant(gateway, team),
    )
    quiet = {"id": "c-quiet", "messages": [{"role": "assistant", "text": "hi", "sent_at": SENT}]}
    strangers = [
        await widget.post(
            "/widget/v1/ticket-requests",
            json=body(assistant),
            headers=as_visitor(
                assistant, **{"X-Widget-Key": None, "X-Forwarded-For": new_visitor_address()}
            ),
        )
        for _ in range(100)  # more than INTAKE_RATE_LIMIT_PER_ASSISTANT (60)
    ]
    assert {a.status_code for a in strangers} == {401}
    await assert_created(widget, assistant)  # the real widget: its budget is untouched

    # Key holders from many addresses can spend it: then 429 for everyone of this
    # assistant, and the neighbouring assistant is still served.
    answers = []
    for _ in range(70):
        answers.append(
            await widget.post(
                "/widget/v1/ticket-requests",
                json=body(assistant, conversation=quiet),
                headers=as_visitor(assistant, **{"X-Forwarded-For": new_visitor_address()}),
            )
        )
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert_refused(limited[0], 429, "rate_limited")
    assert "Retry-After" in limited[0].headers
    assert f"for assistant {assistant.id!r}" in limited[0].json()["detail"]
    await assert_created(widget, neighbour)
