"""Reading a ticket's history through the gateway: pages, type filter, notes for every role,
and the history of a deleted ticket for owners and admins only."""

from uuid import uuid4

import httpx

from tests.e2e.conftest import System, Workspace, history


async def member_of(
    system: System, gateway: httpx.AsyncClient, team: Workspace, role: str
) -> dict[str, str]:
    added = await gateway.post(
        "/api/v1/members",
        json={"email": f"{role}-{uuid4().hex[:6]}@acme.io", "role": role},
        headers=team.auth,
    )
    assert added.status_code == 201, added.text
    token = system.helpdesk(
        "token", "--workspace", team.workspace_id, "--member", added.json()["id"]
    )
    return {"Authorization": f"Bearer {token.stdout.strip()}"}


async def test_the_history_pages_and_filters_by_type_and_every_role_sees_notes(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    guest = await member_of(system, gateway, team, "guest")
    ticket = (
        await gateway.post("/api/v1/tickets", json={"subject": "Paging"}, headers=team.auth)
    ).json()
    for n in range(3):
        await gateway.post(
            f"/api/v1/tickets/{ticket['id']}/notes", json={"body": f"note {n}"}, headers=team.auth
        )
    await gateway.patch(
        f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"}, headers=team.auth
    )
    entries = await history(gateway, ticket["id"], guest, 5)

    first = (
        await gateway.get(
            f"/api/v1/tickets/{ticket['id']}/activity", params={"limit": 2}, headers=guest
        )
    ).json()
    rest = (
        await gateway.get(
            f"/api/v1/tickets/{ticket['id']}/activity",
            params={"limit": 10, "cursor": first["next_cursor"]},
            headers=guest,
        )
    ).json()
    notes = (
        await gateway.get(
            f"/api/v1/tickets/{ticket['id']}/activity",
            params={"type": "ticket.note_added"},
            headers=guest,
        )
    ).json()

    assert [e["sequence"] for e in entries] == [1, 2, 3, 4, 5]
    assert [e["sequence"] for e in first["items"]] == [1, 2]
    assert [e["sequence"] for e in rest["items"]] == [3, 4, 5]
    assert rest["next_cursor"] is None
    assert [e["changes"]["note"]["to"] for e in notes["items"]] == ["note 0", "note 1", "note 2"]


async def test_a_deleted_tickets_history_stays_for_owners_and_admins_only(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team, other = system.create_workspace(), system.create_workspace()
    admin = await member_of(system, gateway, team, "admin")
    member = await member_of(system, gateway, team, "member")
    ticket = (
        await gateway.post("/api/v1/tickets", json={"subject": "Gone"}, headers=team.auth)
    ).json()
    await history(gateway, ticket["id"], team.auth, 1)
    deleted_path = f"/api/v1/deleted-tickets/{ticket['id']}/activity"
    # Not deleted yet: its history is the live one.
    assert (await gateway.get(deleted_path, headers=team.auth)).status_code == 404
    deleted = await gateway.delete(f"/api/v1/tickets/{ticket['id']}", headers=team.auth)
    assert deleted.status_code == 204

    entries = await history(gateway, ticket["id"], admin, 2, of="deleted-tickets")

    assert [e["type"] for e in entries] == ["ticket.created", "ticket.deleted"]
    assert (await gateway.get(deleted_path, headers=team.auth)).status_code == 200
    refused = await gateway.get(deleted_path, headers=member)
    assert refused.status_code == 403, refused.text
    assert "read_deleted_history" in refused.json()["detail"]
    assert (await gateway.get(deleted_path, headers=other.auth)).status_code == 404
    # Gone from the tickets, like the ticket itself.
    live_path = f"/api/v1/tickets/{ticket['id']}/activity"
    assert (await gateway.get(live_path, headers=team.auth)).status_code == 404
    for never in (
        f"/api/v1/tickets/{uuid4()}/activity",
        f"/api/v1/deleted-tickets/{uuid4()}/activity",
    ):
        assert (await gateway.get(never, headers=team.auth)).status_code == 404
