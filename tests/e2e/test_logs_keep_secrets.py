"""No service writes a secret, a token or what a visitor or member wrote into its log: the
four real processes are sent requests full of canary values (a visitor's email, name and text,
a ticket's subject and description, bearer tokens, a widget body on Kafka), and one of them is
made to log a traceback while such values sit in its local variables; then no log file of any
service holds any canary."""

import json
import re
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from shared.contracts.topics import WIDGET_TICKET_REQUESTS
from shared.db import create_engine
from shared.kafka_security import aiokafka_security
from shared.settings import SystemSettings
from tests.e2e.conftest import System
from tests.support.kafka_reader import header, read_until
from tests.support.waiting import eventually

SENT = "2026-11-25T09:00:00+00:00"
HIDDEN_TICKETS = "tickets_hidden_by_test"


def canary(what: str) -> str:
    return f"canary-{what}-{uuid4().hex[:12]}"


def log_text(system: System) -> str:
    files = sorted(Path(system.running.log_dir).glob("*.log"))
    assert {file.stem for file in files} >= {"ticket-core", "activity-log", "intake", "gateway"}
    return "\n".join(file.read_text(errors="replace") for file in files)


def log_lines(system: System, service: str) -> list[dict[str, Any]]:
    path = Path(system.running.log_dir) / f"{service}.log"
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def rename_table(system: System, old: str, new: str) -> None:
    engine = create_engine(system.env["TICKET_CORE_DATABASE_URL"])
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
    finally:
        await engine.dispose()


async def test_no_canary_reaches_any_log(system: System, gateway: httpx.AsyncClient) -> None:
    team = system.create_workspace()
    subject, description = canary("subject"), canary("description")
    visitor_email = f"{canary('visitor')}@example.com"
    visitor_name, visitor_text = canary("name"), canary("visitor-text")
    invalid_email = canary("not-an-email")
    forged_token = canary("forged-token")
    kafka_text = canary("kafka-widget-text")
    failing_subject, failing_description = canary("failing-subject"), canary("failing-body")
    canaries = [
        team.token,
        subject,
        description,
        visitor_email,
        visitor_name,
        visitor_text,
        invalid_email,
        forged_token,
        kafka_text,
        failing_subject,
        failing_description,
        system.env["HELPDESK_JWT_SECRET"],
        *system.env["HELPDESK_INTERNAL_SECRETS"].split(","),
    ]

    # The dashboard: a ticket and a note written by a member, a forged token refused.
    created = await gateway.post(
        "/api/v1/tickets",
        json={"subject": subject, "description": description},
        headers=team.auth,
    )
    assert created.status_code == 201, created.text
    noted = await gateway.post(
        f"/api/v1/tickets/{created.json()['id']}/notes",
        json={"body": description},
        headers=team.auth,
    )
    assert noted.status_code == 201, noted.text
    forged = await gateway.get(
        "/api/v1/tickets", headers={"Authorization": f"Bearer {forged_token}"}
    )
    assert forged.status_code == 401

    # The widget: a visitor's conversation with contact details becomes a ticket; one with an
    # invalid email is refused.
    assistant = f"asst-{uuid4().hex[:10]}"
    saved = await gateway.put(
        f"/api/v1/assistants/{assistant}/ticket-settings",
        json={"ticket_creation_enabled": True, "require_contact_info": True},
        headers=team.auth,
    )
    assert saved.status_code == 200, saved.text
    widget_key = saved.json().get("widget_key")
    widget_headers = {"X-Widget-Key": widget_key} if widget_key else {}

    def widget_body(email: str, words: str) -> dict[str, Any]:
        return {
            "request_id": f"req-{uuid4()}",
            "assistant_id": assistant,
            "conversation": {
                "id": f"conv-{uuid4().hex[:10]}",
                "messages": [{"role": "visitor", "text": words, "sent_at": SENT}],
            },
            "contact": {"name": visitor_name, "email": email},
        }

    async with httpx.AsyncClient(base_url=system.widget, timeout=15.0) as widget:
        good = widget_body(visitor_email, visitor_text)
        accepted = await widget.post(
            "/widget/v1/ticket-requests", json=good, headers=widget_headers
        )
        assert accepted.status_code == 202, accepted.text
        refused = await widget.post(
            "/widget/v1/ticket-requests",
            json=widget_body(invalid_email, visitor_text),
            headers=widget_headers,
        )
        assert 400 <= refused.status_code < 500, refused.text

        async def created_ticket() -> dict[str, Any] | None:
            answer = await widget.get(
                f"/widget/v1/ticket-requests/{good['request_id']}", headers=widget_headers
            )
            status: dict[str, Any] = answer.json()
            return status if status.get("status") == "created" else None

        done = await eventually(created_ticket, what="the widget request to become a ticket")

    # Through the activity log and the conversation, so every service has handled the values.
    async def history() -> list[Any] | None:
        answer = await gateway.get(
            f"/api/v1/tickets/{done['ticket_id']}/activity", headers=team.auth
        )
        items: list[Any] = answer.json()["items"]
        return items or None

    await eventually(history, what="the widget ticket's activity")
    opened = await gateway.get(
        f"/api/v1/conversations/{good['conversation']['id']}", headers=team.auth
    )
    assert [m["text"] for m in opened.json()["messages"]] == [visitor_text]

    # A widget body on Kafka that can never be processed: dead-lettered, with its reason.
    poison = widget_body(visitor_email, kafka_text)
    poison["conversation"]["messages"][0]["sent_at"] = kafka_text
    producer = AIOKafkaProducer(
        bootstrap_servers=system.kafka, acks="all", **aiokafka_security(SystemSettings())
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            WIDGET_TICKET_REQUESTS.name,
            json.dumps(poison).encode(),
            key=poison["request_id"].encode(),
        )
    finally:
        await producer.stop()
    [dead] = await read_until(
        system.kafka,
        WIDGET_TICKET_REQUESTS.dead_letter,
        lambda record: kafka_text.encode() in (record.value or b""),
    )
    assert "sent_at" in (header(dead, "dead-letter-reason") or "")

    # A traceback while the request's values (and its credential) are in ticket-core's
    # locals: its tickets table is away for one request.
    await rename_table(system, "tickets", HIDDEN_TICKETS)
    try:
        failed = await gateway.post(
            "/api/v1/tickets",
            json={"subject": failing_subject, "description": failing_description},
            headers=team.auth,
        )
    finally:
        await rename_table(system, HIDDEN_TICKETS, "tickets")
    assert failed.status_code >= 500, failed.text

    tracebacks = [
        line
        for line in log_lines(system, "ticket-core")
        if line.get("event") == "unhandled_error"
        and any("tickets" in stack["exc_value"] for stack in line.get("exception", []))
    ]
    assert tracebacks, "ticket-core logged no traceback for the failing request"
    assert any(stack["frames"] for stack in tracebacks[-1]["exception"])
    logs = log_text(system)
    leaked = [value for value in canaries if value in logs]
    assert leaked == []
    # No credential of any kind, not even the internal ones the gateway signs per call.
    assert re.search(r"eyJ[A-Za-z0-9_-]+\.", logs) is None
