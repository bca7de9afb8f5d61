"""The reference subscriber (examples/), which knows only the published contract, rebuilds
every ticket's state from `ticket.events.v1` and ends up equal to ticket-core's, after a
scripted workload of a few hundred changes across many tickets."""

import asyncio
import random
from typing import Any
from uuid import uuid4

import httpx

from examples.ticket_state_subscriber import TicketStates, follow
from tests.e2e.conftest import System

COMPARED = ("number", "subject", "description", "status", "priority", "assignee_id")
MOVES = {
    "new": ["open", "in_progress", "resolved"],
    "open": ["in_progress", "waiting_on_customer", "resolved"],
    "in_progress": ["waiting_on_customer", "resolved", "open"],
    "waiting_on_customer": ["open", "in_progress", "resolved"],
    "resolved": ["open", "closed"],
    "closed": ["open"],
}


async def test_the_reference_subscriber_rebuilds_ticket_cores_state(
    system: System, gateway: httpx.AsyncClient
) -> None:
    team = system.create_workspace()
    agent = (
        await gateway.post(
            "/api/v1/members", json={"email": f"a-{uuid4().hex[:6]}@acme.io"}, headers=team.auth
        )
    ).json()["id"]
    pick = random.Random(42)
    tickets = [
        (
            await gateway.post(
                "/api/v1/tickets", json={"subject": f"Ticket {i}"}, headers=team.auth
            )
        ).json()
        for i in range(25)
    ]
    changes = 0
    for step in range(300):
        ticket = pick.choice(tickets)
        path = f"/api/v1/tickets/{ticket['id']}"
        kind = pick.choice(["subject", "priority", "status", "assignee", "note", "link"])
        if kind == "subject":
            answer = await gateway.patch(path, json={"subject": f"S{step}"}, headers=team.auth)
        elif kind == "priority":
            priority = pick.choice(["low", "normal", "high", "critical"])
            answer = await gateway.patch(path, json={"priority": priority}, headers=team.auth)
        elif kind == "status":
            status = pick.choice(MOVES[ticket["status"]])
            answer = await gateway.patch(path, json={"status": status}, headers=team.auth)
        elif kind == "assignee":
            assignee = pick.choice([agent, team.member_id, None])
            answer = await gateway.patch(path, json={"assignee_id": assignee}, headers=team.auth)
        elif kind == "note":
            answer = await gateway.post(
                f"{path}/notes", json={"body": f"n{step}"}, headers=team.auth
            )
        else:
            answer = await gateway.post(
                f"{path}/conversations",
                json={"conversation_id": f"c-{uuid4().hex[:8]}"},
                headers=team.auth,
            )
        assert answer.status_code in (200, 201), answer.text
        if kind != "note":
            ticket.update(answer.json())
        changes += 1
    for gone in tickets[:3]:
        assert (
            await gateway.delete(f"/api/v1/tickets/{gone['id']}", headers=team.auth)
        ).status_code == 204
    truth: dict[str, dict[str, Any]] = {}
    for ticket in tickets[3:]:
        truth[ticket["id"]] = (
            await gateway.get(f"/api/v1/tickets/{ticket['id']}", headers=team.auth)
        ).json()

    def caught_up(states: TicketStates) -> bool:
        return all(
            ticket_id in states.tickets
            and all(states.tickets[ticket_id].get(f) == truth[ticket_id][f] for f in COMPARED)
            and states.tickets[ticket_id]["conversation_ids"]
            == truth[ticket_id]["conversation_ids"]
            for ticket_id in truth
        ) and all(states.tickets.get(g["id"], {}).get("deleted") for g in tickets[:3])

    states = await asyncio.wait_for(
        follow(system.kafka, f"reference-{uuid4()}", TicketStates(), stop_when=caught_up),
        timeout=120,
    )

    assert changes == 300
    assert not set(states.gaps()) & set(truth)  # none of our tickets waits on a gap
    for ticket_id, expected in truth.items():
        assert {f: states.tickets[ticket_id][f] for f in COMPARED} == {
            f: expected[f] for f in COMPARED
        }
