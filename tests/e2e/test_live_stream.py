"""The dashboard's live stream, `GET /api/v1/stream`, through the gateway process: a change
arrives as it happens, only to its own workspace, and a client that reconnects with
`Last-Event-ID` gets every event it missed, in order, then the live ones."""

import asyncio
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import System, Workspace, hire
from tests.support.internal_credentials import internal_headers
from tests.support.sse import EventStream, open_stream

pytestmark = pytest.mark.e2e

Json = dict[str, Any]


async def create_ticket(gateway: httpx.AsyncClient, team: Workspace, subject: str) -> Json:
    answer = await gateway.post("/api/v1/tickets", json={"subject": subject}, headers=team.auth)
    assert answer.status_code == 201, answer.text
    ticket: Json = answer.json()
    return ticket


async def patch(gateway: httpx.AsyncClient, team: Workspace, ticket_id: str, body: Json) -> None:
    answer = await gateway.patch(f"/api/v1/tickets/{ticket_id}", json=body, headers=team.auth)
    assert answer.status_code == 200, answer.text


async def next_event_of(stream: EventStream, ticket_id: str, type_: str) -> Json:
    while True:
        frame = await stream.next_matching(type_)
        if frame.json["subject"] == ticket_id:
            event: Json = frame.json
            return event


async def test_a_patch_reaches_the_stream_with_the_old_and_new_value(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    ticket = await create_ticket(gateway, team, "Printer jam")
    async with open_stream(gateway, headers=team.auth) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")

        await patch(gateway, team, ticket["id"], {"status": "open"})

        frame = await stream.next_matching("ticket.status_changed")
    assert frame.id
    assert frame.json["subject"] == ticket["id"]
    assert frame.json["workspace_id"] == team.workspace_id
    assert frame.json["data"]["changes"] == {"status": {"from": "new", "to": "open"}}


async def test_a_stream_never_shows_another_workspaces_events(
    system: System, gateway: httpx.AsyncClient
) -> None:
    mine, theirs = system.create_workspace(), system.create_workspace()
    async with open_stream(gateway, headers=mine.auth) as stream:
        for n in range(3):
            await create_ticket(gateway, theirs, f"Their secret {n}")
        own = await create_ticket(gateway, mine, "Mine")

        frame = await stream.next_matching("ticket.created")
        # Theirs were published first; the first event this stream sees is its own.
        assert frame.json["subject"] == own["id"]
        assert await stream.nothing_more(within=1.5)


async def test_reconnecting_with_last_event_id_delivers_what_was_missed_in_order(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    async with open_stream(gateway, headers=team.auth) as stream:
        ticket = await create_ticket(gateway, team, "Refund")
        seen = await stream.next_matching("ticket.created")
    # Disconnected: three changes happen meanwhile, one of them to a ticket made meanwhile.
    await patch(gateway, team, ticket["id"], {"status": "open"})
    await patch(gateway, team, ticket["id"], {"priority": "high"})
    other = await create_ticket(gateway, team, "Second")
    assert seen.id is not None

    async with open_stream(gateway, headers={**team.auth, "Last-Event-ID": seen.id}) as stream:
        missed = [await stream.next() for _ in range(3)]
        await patch(gateway, team, ticket["id"], {"status": "in_progress"})
        live = await stream.next_matching("ticket.status_changed")

    # Kafka orders one ticket's events (one partition), not events of different tickets.
    by_ticket: dict[str, list[tuple[str, int]]] = {}
    for frame in missed:
        by_ticket.setdefault(frame.json["subject"], []).append(
            (frame.event, frame.json["sequence"])
        )
    assert by_ticket == {
        ticket["id"]: [("ticket.status_changed", 2), ("ticket.priority_changed", 3)],
        other["id"]: [("ticket.created", 1)],
    }
    assert live.json["data"]["changes"]["status"] == {"from": "open", "to": "in_progress"}


async def test_the_id_of_a_resumed_stream_resumes_it_again(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    async with open_stream(gateway, headers=team.auth) as stream:
        ticket = await create_ticket(gateway, team, "Chain")
        first = await stream.next_matching("ticket.created")
    await patch(gateway, team, ticket["id"], {"status": "open"})
    assert first.id is not None
    async with open_stream(gateway, headers={**team.auth, "Last-Event-ID": first.id}) as stream:
        second = await stream.next_matching("ticket.status_changed")
    await patch(gateway, team, ticket["id"], {"priority": "low"})
    assert second.id is not None
    async with open_stream(gateway, headers={**team.auth, "Last-Event-ID": second.id}) as stream:
        third = await stream.next()
        assert await stream.nothing_more(within=1.5)

    assert (third.event, third.json["sequence"]) == ("ticket.priority_changed", 3)


@pytest.mark.parametrize("last_event_id", ["yesterday", "0:1.x:2", "-1:5", "0:-3"])
async def test_a_last_event_id_the_stream_never_sent_is_refused(
    system: System, gateway: httpx.AsyncClient, last_event_id: str
) -> None:
    team = system.create_workspace()
    answer = await gateway.get(
        "/api/v1/stream", headers={**team.auth, "Last-Event-ID": last_event_id}
    )

    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "invalid_last_event_id"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no-token", "malformed", "not-bearer"],
)
async def test_a_stream_without_a_valid_token_is_refused(
    gateway: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answer = await gateway.get("/api/v1/stream", headers=headers)

    assert answer.status_code == 401
    assert answer.json()["code"] in {"missing_token", "invalid_token"}


async def test_an_eventsource_may_pass_the_token_as_a_query_parameter(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    async with open_stream(gateway, params={"access_token": team.token}) as stream:
        ticket = await create_ticket(gateway, team, "From a browser")
        event = await next_event_of(stream, ticket["id"], "ticket.created")
    assert event["data"]["ticket"]["subject"] == "From a browser"


async def test_a_removed_members_stream_ends_and_their_token_stops_working(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    agent = await hire(system, gateway, team, "member")
    async with open_stream(gateway, headers=agent.auth) as stream:
        removed = await gateway.delete(f"/api/v1/members/{agent.member_id}", headers=team.auth)
        assert removed.status_code == 204
        end = await stream.next_matching("end")
    assert end.json == {"reason": "member_removed"}
    again = await gateway.get("/api/v1/tickets", headers=agent.auth)
    assert again.status_code == 401
    assert again.json()["code"] == "unknown_member"


async def test_a_demoted_admin_loses_admin_rights_within_seconds_despite_the_role_cache(
    system: System, gateway: httpx.AsyncClient
) -> None:
    """The gateway caches roles for an hour in these tests; intake decides ticket settings by
    the role the gateway sends, so only the member.role_changed event can make this pass."""
    team = system.create_workspace()
    admin = await hire(system, gateway, team, "admin")
    settings = "/api/v1/assistants/asst-demo/ticket-settings"
    body = {"ticket_creation_enabled": True, "require_contact_info": False}
    assert (await gateway.put(settings, json=body, headers=admin.auth)).status_code == 200

    # Demoted through ticket-core's internal API, as another gateway replica would: this
    # gateway learns of it only from the member.role_changed event.
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{system.running.plan.ticket_core_port}"
    ) as ticket_core:
        changed = await ticket_core.patch(
            f"/internal/v1/members/{admin.member_id}",
            json={"role": "guest"},
            headers=internal_headers(
                "ticket-core", team.workspace_id, team.member_id, "owner", secrets=system.secrets
            ),
        )
    assert changed.status_code == 200, changed.text

    async def refused() -> bool:
        answer = await gateway.put(settings, json=body, headers=admin.auth)
        return answer.status_code == 403

    for _ in range(100):
        if await refused():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the demoted admin still changes ticket settings after 10 s")


async def test_readyz_checks_every_service_behind_the_gateway_and_the_broker(
    gateway: httpx.AsyncClient,
) -> None:
    answer = await gateway.get("/readyz")

    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"] == {
        "ticket-core": "ok",
        "activity-log": "ok",
        "intake": "ok",
        "kafka": "ok",
    }


@pytest.mark.parametrize("role", ["admin", "member", "guest"])
async def test_every_role_may_follow_its_workspace_live(
    system: System, gateway: httpx.AsyncClient, role: str
) -> None:
    team = system.create_workspace()
    person = await hire(system, gateway, team, role)
    async with open_stream(gateway, headers=person.auth) as stream:
        ticket = await create_ticket(gateway, team, f"Seen by a {role}")
        event = await next_event_of(stream, ticket["id"], "ticket.created")
    assert event["actor"] == {"type": "member", "id": team.member_id}
