"""The first flow, end to end: an operator creates a workspace, the dashboard creates a
ticket through the gateway, ticket-core publishes `ticket.created` through its outbox,
activity-log stores it, and both the dashboard and a plain Kafka subscriber see it."""

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from shared.auth import issue_token
from tests.e2e.conftest import System
from tests.support.kafka_reader import body, header, read_until
from tests.support.waiting import eventually

ENVELOPE_FIELDS = {
    "id",
    "type",
    "schema_version",
    "source",
    "time",
    "workspace_id",
    "subject",
    "sequence",
    "correlation_id",
    "causation_id",
    "actor",
    "data",
}


async def test_a_dashboard_ticket_reaches_the_topic_and_the_activity_log(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()

    created = await gateway.post(
        "/api/v1/tickets",
        json={"subject": "Checkout fails", "description": "500 on pay", "priority": "high"},
        headers={**team.auth, "X-Request-Id": "req-e2e-1"},
    )

    assert created.status_code == 201, created.text
    ticket = created.json()
    assert ticket["number"] == 1
    assert ticket["status"] == "new"
    assert ticket["priority"] == "high"
    assert ticket["assignee_id"] is None
    assert ticket["conversation_ids"] == []
    assert created.headers["ETag"] == '"1"'
    assert created.headers["X-Request-Id"] == "req-e2e-1"

    fetched = await gateway.get(f"/api/v1/tickets/{ticket['id']}", headers=team.auth)
    assert fetched.status_code == 200
    assert fetched.json() == ticket

    async def activity() -> list[dict[str, Any]] | None:
        answer = await gateway.get(f"/api/v1/tickets/{ticket['id']}/activity", headers=team.auth)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items or None

    [entry] = await eventually(activity, what="the ticket.created activity entry")
    assert entry["type"] == "ticket.created"
    assert entry["sequence"] == 1
    assert entry["actor"] == {"type": "member", "id": team.member_id}
    assert entry["changes"]["subject"] == {"from": None, "to": "Checkout fails"}
    assert entry["changes"]["priority"] == {"from": None, "to": "high"}

    [record] = await read_until(
        system.kafka, "ticket.events.v1", lambda r: r.key == ticket["id"].encode()
    )
    event = body(record)
    assert set(event) == ENVELOPE_FIELDS
    assert UUID(event["id"]) == UUID(entry["event_id"])
    assert event["type"] == "ticket.created"
    assert event["schema_version"] == 1
    assert event["source"] == "ticket-core"
    assert datetime.fromisoformat(event["time"]).tzinfo is not None
    assert event["workspace_id"] == team.workspace_id
    assert event["subject"] == ticket["id"]
    assert event["sequence"] == 1
    assert event["correlation_id"] == "req-e2e-1"
    assert event["causation_id"] == "req-e2e-1"
    assert event["actor"] == {"type": "member", "id": team.member_id}
    assert event["data"]["ticket"]["subject"] == "Checkout fails"
    assert event["data"]["ticket"]["number"] == 1
    assert header(record, "event-type") == "ticket.created"


async def test_numbers_count_up_per_workspace(system: System, gateway: httpx.AsyncClient) -> None:
    team, other = system.create_workspace("A"), system.create_workspace("B")
    numbers = []
    for auth in (team.auth, team.auth, other.auth, team.auth):
        answer = await gateway.post("/api/v1/tickets", json={"subject": "x"}, headers=auth)
        numbers.append(answer.json()["number"])
    assert numbers == [1, 2, 1, 3]


async def test_a_ticket_of_another_workspace_is_not_found(
    system: System, gateway: httpx.AsyncClient
) -> None:
    mine, theirs = system.create_workspace("Mine"), system.create_workspace("Theirs")
    answer = await gateway.post("/api/v1/tickets", json={"subject": "secret"}, headers=theirs.auth)
    ticket_id = answer.json()["id"]

    for path in (f"/api/v1/tickets/{ticket_id}", f"/api/v1/tickets/{ticket_id}/activity"):
        refused = await gateway.get(path, headers=mine.auth)
        assert refused.status_code == 404
        assert refused.json()["code"] == "not_found"
        assert "secret" not in refused.text


BAD_BODIES = [
    pytest.param(b'{"subject": "unterminated', 400, "malformed_json", id="malformed-json"),
    pytest.param(b"[1, 2]", 422, "validation_failed", id="not-an-object"),
    pytest.param(b'{"description": "no subject"}', 422, "validation_failed", id="missing-subject"),
    pytest.param(b'{"subject": ""}', 422, "validation_failed", id="empty-subject"),
    pytest.param(b'{"subject": "   "}', 422, "subject_required", id="blank-subject"),
    pytest.param(
        b'{"subject": "x", "priority": "urgent"}', 422, "validation_failed", id="unknown-priority"
    ),
    pytest.param(
        b'{"subject": "' + b"x" * 201 + b'"}', 422, "validation_failed", id="subject-over-200"
    ),
    pytest.param(
        b'{"subject": "x", "assignee_id": "' + str(uuid4()).encode() + b'"}',
        409,
        "unknown_assignee",
        id="unknown-assignee",
    ),
]


@pytest.mark.parametrize(("raw", "status", "code"), BAD_BODIES)
async def test_a_bad_body_is_refused_clearly_and_nothing_is_stored_or_published(
    system: System, gateway: httpx.AsyncClient, raw: bytes, status: int, code: str
) -> None:
    team = system.create_workspace()
    before = await system.ticket_core_counts()

    answer = await gateway.post(
        "/api/v1/tickets",
        content=raw,
        headers={**team.auth, "Content-Type": "application/json"},
    )

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["detail"]
    assert await system.ticket_core_counts() == before


def _tokens(system: System) -> dict[str, tuple[dict[str, str], str]]:
    secret = system.env["HELPDESK_JWT_SECRET"]
    team = system.create_workspace()
    member, workspace = UUID(team.member_id), UUID(team.workspace_id)
    return {
        "none": ({}, "missing_token"),
        "not-a-jwt": ({"Authorization": "Bearer not.a.jwt"}, "invalid_token"),
        "not-bearer": ({"Authorization": f"Basic {team.token}"}, "missing_token"),
        "expired": (
            {
                "Authorization": "Bearer "
                + issue_token(member, workspace, secret, timedelta(seconds=-5))
            },
            "invalid_token",
        ),
        "other-key": (
            {"Authorization": "Bearer " + issue_token(member, workspace, "k" * 40)},
            "invalid_token",
        ),
        "no-such-workspace": (
            {"Authorization": "Bearer " + issue_token(member, uuid4(), secret)},
            "unknown_member",
        ),
        "no-such-member": (
            {"Authorization": "Bearer " + issue_token(uuid4(), workspace, secret)},
            "unknown_member",
        ),
    }


async def test_every_bad_token_gets_401_and_nothing_is_stored(
    system: System, gateway: httpx.AsyncClient
) -> None:
    for name, (headers, code) in _tokens(system).items():
        before = await system.ticket_core_counts()

        answer = await gateway.post("/api/v1/tickets", json={"subject": "x"}, headers=headers)

        assert answer.status_code == 401, (name, answer.text)
        assert answer.json()["code"] == code, name
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert await system.ticket_core_counts() == before, name


async def test_every_service_reports_ready(system: System) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        for service in system.running.plan.services():
            ready = await client.get(f"http://127.0.0.1:{service.port}/readyz")
            assert ready.status_code == 200, (service.name, ready.text)


async def test_the_gateway_serves_the_published_kafka_contract(gateway: httpx.AsyncClient) -> None:
    served = await gateway.get("/api/v1/asyncapi.json")
    committed = json.loads((Path(__file__).parents[2] / "docs" / "asyncapi.json").read_text())
    assert served.status_code == 200
    assert served.json() == committed


async def test_an_oversized_body_is_refused_with_413_whether_declared_or_streamed(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    before = await system.ticket_core_counts()
    big = b'{"subject": "x", "description": "' + b"y" * 1_100_000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the body arrives chunked and is counted as it comes.
        for start in range(0, len(big), 64_000):
            yield big[start : start + 64_000]

    declared = await gateway.post(
        "/api/v1/tickets", content=big, headers={**team.auth, "Content-Type": "application/json"}
    )
    streamed = await gateway.post(
        "/api/v1/tickets",
        content=chunks(),
        headers={**team.auth, "Content-Type": "application/json"},
    )

    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        assert answer.json()["code"] == "body_too_large"
    assert "content-length" not in streamed.request.headers
    assert await system.ticket_core_counts() == before


async def test_the_request_id_the_gateway_makes_follows_the_write_into_its_event(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()

    created = await gateway.post(
        "/api/v1/tickets", json={"subject": "Which request was this?"}, headers=team.auth
    )

    assert created.status_code == 201, created.text
    request_id = created.headers["X-Request-Id"]
    [record] = await read_until(
        system.kafka, "ticket.events.v1", lambda r: r.key == created.json()["id"].encode()
    )
    assert body(record)["correlation_id"] == request_id
