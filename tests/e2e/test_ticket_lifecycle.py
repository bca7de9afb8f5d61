"""A ticket's whole life, end to end: every dashboard capability is driven through the gateway,
and each change is checked where its users see it — the event a subscriber reads on
`ticket.events.v1` and the entry the dashboard reads in the activity log. Refusals (roles,
bad input, stale versions) are checked to be clear problems that change, store and publish
nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest

from shared.contracts.topics import TICKET_EVENTS
from tests.e2e.conftest import System, hire
from tests.e2e.conftest import Workspace as Person
from tests.support.kafka_reader import body, read_until
from tests.support.waiting import eventually

Json = dict[str, Any]
ALL_STATUSES = ["new", "open", "in_progress", "waiting_on_customer", "resolved", "closed", "spam"]


# -- who acts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crew:
    """One workspace with a member of every role (and a second plain member)."""

    owner: Person
    admin: Person
    member: Person
    other_member: Person
    guest: Person


def found_workspace(system: System) -> Person:
    """A new workspace; its founding owner."""
    team = system.create_workspace()
    return Person(team.workspace_id, team.member_id, team.token)


@pytest.fixture(scope="module")
async def crew(system: System) -> AsyncIterator[Crew]:
    """Shared by the role tests of one system (minting tokens takes a process each); every
    test makes its own tickets in it, so the tests stay independent."""
    owner = found_workspace(system)
    async with httpx.AsyncClient(base_url=system.gateway, timeout=15.0) as client:
        yield Crew(
            owner=owner,
            admin=await hire(system, client, owner, "admin"),
            member=await hire(system, client, owner, "member"),
            other_member=await hire(system, client, owner, "member"),
            guest=await hire(system, client, owner, "guest"),
        )


# -- the dashboard, the topic and the activity log ----------------------------------------------


@dataclass
class Desk:
    """The dashboard API (through the gateway) and the two places a change must show up."""

    system: System
    gateway: httpx.AsyncClient

    async def create(self, who: Person, **fields: Any) -> Json:
        answer = await self.gateway.post(
            "/api/v1/tickets", json={"subject": "Checkout fails", **fields}, headers=who.auth
        )
        assert answer.status_code == 201, answer.text
        ticket: Json = answer.json()
        return ticket

    async def get(self, who: Person, ticket_id: str) -> Json:
        answer = await self.gateway.get(f"/api/v1/tickets/{ticket_id}", headers=who.auth)
        assert answer.status_code == 200, answer.text
        assert answer.headers["ETag"] == f'"{answer.json()["version"]}"'
        ticket: Json = answer.json()
        return ticket

    async def patch(
        self, who: Person, ticket_id: str, changes: Json, *, if_match: str | None = None
    ) -> httpx.Response:
        headers = {**who.auth, **({"If-Match": if_match} if if_match is not None else {})}
        return await self.gateway.patch(
            f"/api/v1/tickets/{ticket_id}", json=changes, headers=headers
        )

    async def changed(self, who: Person, ticket_id: str, changes: Json) -> Json:
        """PATCH that must succeed; the new state."""
        answer = await self.patch(who, ticket_id, changes)
        assert answer.status_code == 200, answer.text
        ticket: Json = answer.json()
        assert answer.headers["ETag"] == f'"{ticket["version"]}"'
        return ticket

    async def listed(self, who: Person, **params: Any) -> Json:
        answer = await self.gateway.get("/api/v1/tickets", params=params, headers=who.auth)
        assert answer.status_code == 200, answer.text
        page: Json = answer.json()
        return page

    async def published(self, subject: str, sequence: int) -> Json:
        """The event number `sequence` of `subject` on ticket.events.v1, as a subscriber reads it
        (the first copy: the contract is at-least-once, readers de-duplicate by `id`)."""
        records = await read_until(
            self.system.kafka,
            TICKET_EVENTS.name,
            lambda r: r.key == subject.encode() and body(r)["sequence"] == sequence,
        )
        return body(records[0])

    async def logged(self, who: Person, ticket_id: str, sequence: int) -> Json:
        """The activity entry number `sequence` of the ticket, once activity-log has it."""

        async def entry() -> Json | None:
            answer = await self.gateway.get(
                f"/api/v1/tickets/{ticket_id}/activity", headers=who.auth
            )
            assert answer.status_code == 200, answer.text
            items: list[Json] = answer.json()["items"]
            return next((item for item in items if item["sequence"] == sequence), None)

        return await eventually(entry, what=f"activity entry {sequence} of ticket {ticket_id}")

    async def assert_recorded(
        self,
        ticket_id: str,
        *,
        sequence: int,
        type_: str,
        by: Person,
        changes: Json,
    ) -> Json:
        """The change is on the topic and in the activity log, the same event in both."""
        event = await self.published(ticket_id, sequence)
        assert event["type"] == type_
        assert event["subject"] == ticket_id
        assert event["workspace_id"] == by.workspace_id
        assert event["actor"] == by.actor
        assert event["data"]["changes"] == changes

        entry = await self.logged(by, ticket_id, sequence)
        assert entry["event_id"] == event["id"]
        assert entry["type"] == type_
        assert entry["actor"] == by.actor
        assert entry["changes"] == changes
        return event

    async def state(self, who: Person, ticket_id: str) -> tuple[tuple[int, int], Json]:
        """What a refusal must leave as it was: ticket-core's (tickets, outbox) counts and the
        ticket itself (version and updated_at included)."""
        return await self.system.ticket_core_counts(), await self.get(who, ticket_id)


@pytest.fixture
def desk(system: System, gateway: httpx.AsyncClient) -> Desk:
    return Desk(system, gateway)


@pytest.fixture
def owner(system: System) -> Person:
    return found_workspace(system)


def assert_problem(answer: httpx.Response, status: int, code: str) -> Json:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: Json = answer.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    assert problem["detail"]
    return problem


def change(old: Any, new: Any) -> Json:
    return {"from": old, "to": new}


# -- 1. editing, priority, status ---------------------------------------------------------------


async def test_editing_subject_and_description_publishes_ticket_edited(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner, subject="Checkout fails", description="500 on pay")

    edited = await desk.changed(
        owner, ticket["id"], {"subject": "Checkout fails on Safari", "description": "Only Safari"}
    )

    assert edited["subject"] == "Checkout fails on Safari"
    assert edited["description"] == "Only Safari"
    assert edited["version"] == 2
    assert await desk.get(owner, ticket["id"]) == edited
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.edited",
        by=owner,
        changes={
            "subject": change("Checkout fails", "Checkout fails on Safari"),
            "description": change("500 on pay", "Only Safari"),
        },
    )


async def test_changing_the_priority_publishes_ticket_priority_changed(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner)

    changed = await desk.changed(owner, ticket["id"], {"priority": "critical"})

    assert changed["priority"] == "critical"
    assert changed["version"] == 2
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.priority_changed",
        by=owner,
        changes={"priority": change("normal", "critical")},
    )


async def test_each_status_move_publishes_ticket_status_changed_with_from_and_to(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner)
    moves = [("new", "open"), ("open", "in_progress"), ("in_progress", "resolved")]

    for _, new in moves:
        moved = await desk.changed(owner, ticket["id"], {"status": new})
        assert moved["status"] == new

    assert (await desk.get(owner, ticket["id"]))["version"] == 1 + len(moves)
    for sequence, (old, new) in enumerate(moves, start=2):
        await desk.assert_recorded(
            ticket["id"],
            sequence=sequence,
            type_="ticket.status_changed",
            by=owner,
            changes={"status": change(old, new)},
        )


async def test_a_patch_to_the_current_values_changes_and_publishes_nothing(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner, subject="Refund", description="d", priority="high")
    before = await desk.state(owner, ticket["id"])

    answer = await desk.patch(
        owner,
        ticket["id"],
        {
            "subject": "  Refund  ",  # the same subject once trimmed
            "description": "d",
            "priority": "high",
            "status": "new",
            "assignee_id": None,
        },
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == ticket
    assert answer.headers["ETag"] == '"1"'
    assert await desk.state(owner, ticket["id"]) == before
    # The next real change is event 2: the no-op published nothing in between.
    await desk.changed(owner, ticket["id"], {"priority": "low"})
    event = await desk.published(ticket["id"], 2)
    assert event["type"] == "ticket.priority_changed"


async def test_one_patch_of_several_fields_is_one_version_and_one_event_per_change(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner, subject="Old")

    changed = await desk.changed(
        owner, ticket["id"], {"subject": "New", "priority": "high", "status": "open"}
    )

    assert changed["version"] == 2
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.edited",
        by=owner,
        changes={"subject": change("Old", "New")},
    )
    await desk.assert_recorded(
        ticket["id"],
        sequence=3,
        type_="ticket.priority_changed",
        by=owner,
        changes={"priority": change("normal", "high")},
    )
    await desk.assert_recorded(
        ticket["id"],
        sequence=4,
        type_="ticket.status_changed",
        by=owner,
        changes={"status": change("new", "open")},
    )


# -- 2. assignment ------------------------------------------------------------------------------


async def test_assign_reassign_and_unassign_publish_the_old_and_new_assignee(
    desk: Desk, crew: Crew
) -> None:
    owner, first, second = crew.owner, crew.member, crew.other_member
    ticket = await desk.create(owner)

    assigned = await desk.changed(owner, ticket["id"], {"assignee_id": first.member_id})
    reassigned = await desk.changed(owner, ticket["id"], {"assignee_id": second.member_id})
    unassigned = await desk.changed(owner, ticket["id"], {"assignee_id": None})

    assert assigned["assignee_id"] == first.member_id
    assert reassigned["assignee_id"] == second.member_id
    assert unassigned["assignee_id"] is None
    assert unassigned["version"] == 4
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.assigned",
        by=owner,
        changes={"assignee_id": change(None, first.member_id)},
    )
    await desk.assert_recorded(
        ticket["id"],
        sequence=3,
        type_="ticket.assigned",
        by=owner,
        changes={"assignee_id": change(first.member_id, second.member_id)},
    )
    await desk.assert_recorded(
        ticket["id"],
        sequence=4,
        type_="ticket.unassigned",
        by=owner,
        changes={"assignee_id": change(second.member_id, None)},
    )


# -- 3. notes and conversations -----------------------------------------------------------------


async def test_a_note_is_added_and_published(desk: Desk, owner: Person) -> None:
    ticket = await desk.create(owner)

    answer = await desk.gateway.post(
        f"/api/v1/tickets/{ticket['id']}/notes",
        json={"body": "  Called the customer back.  "},
        headers=owner.auth,
    )

    assert answer.status_code == 201, answer.text
    note = answer.json()
    assert note["ticket_id"] == ticket["id"]
    assert note["body"] == "Called the customer back."
    assert note["author_id"] == owner.member_id
    assert note["ticket_version"] == 2
    event = await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.note_added",
        by=owner,
        changes={"note": change(None, "Called the customer back.")},
    )
    assert event["data"]["note"] == {"id": note["id"], "body": "Called the customer back."}


async def test_linking_a_conversation_shows_it_on_the_ticket_and_publishes_it(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner)
    conversation = f"conv_{uuid4().hex[:8]}"

    answer = await desk.gateway.post(
        f"/api/v1/tickets/{ticket['id']}/conversations",
        json={"conversation_id": conversation},
        headers=owner.auth,
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["conversation_ids"] == [conversation]
    assert answer.headers["ETag"] == '"2"'
    assert (await desk.get(owner, ticket["id"]))["conversation_ids"] == [conversation]
    event = await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.conversation_linked",
        by=owner,
        changes={"conversation_ids": change([], [conversation])},
    )
    assert event["data"]["conversation_id"] == conversation


async def test_a_conversation_linked_to_one_ticket_cannot_be_linked_to_another(
    desk: Desk, owner: Person
) -> None:
    first, second = await desk.create(owner), await desk.create(owner)
    conversation = f"conv_{uuid4().hex[:8]}"
    linked = await desk.gateway.post(
        f"/api/v1/tickets/{first['id']}/conversations",
        json={"conversation_id": conversation},
        headers=owner.auth,
    )
    assert linked.status_code == 200, linked.text
    before = await desk.state(owner, second["id"])

    answer = await desk.gateway.post(
        f"/api/v1/tickets/{second['id']}/conversations",
        json={"conversation_id": conversation},
        headers=owner.auth,
    )

    problem = assert_problem(answer, 409, "conversation_already_linked")
    assert first["id"] in problem["detail"]
    assert await desk.state(owner, second["id"]) == before
    assert (await desk.get(owner, first["id"]))["conversation_ids"] == [conversation]


async def test_an_unlinked_conversation_is_published_and_can_be_linked_to_another_ticket(
    desk: Desk, owner: Person
) -> None:
    first, second = await desk.create(owner), await desk.create(owner)
    conversation = f"conv:{uuid4().hex[:8]}.web-1"
    linked = await desk.gateway.post(
        f"/api/v1/tickets/{first['id']}/conversations",
        json={"conversation_id": conversation},
        headers=owner.auth,
    )
    assert linked.status_code == 200, linked.text

    unlinked = await desk.gateway.delete(
        f"/api/v1/tickets/{first['id']}/conversations/{conversation}", headers=owner.auth
    )
    relinked = await desk.gateway.post(
        f"/api/v1/tickets/{second['id']}/conversations",
        json={"conversation_id": conversation},
        headers=owner.auth,
    )

    assert unlinked.status_code == 200, unlinked.text
    assert unlinked.json()["conversation_ids"] == []
    assert relinked.status_code == 200, relinked.text
    assert relinked.json()["conversation_ids"] == [conversation]
    await desk.assert_recorded(
        first["id"],
        sequence=3,
        type_="ticket.conversation_unlinked",
        by=owner,
        changes={"conversation_ids": change([conversation], [])},
    )
    await desk.assert_recorded(
        second["id"],
        sequence=2,
        type_="ticket.conversation_linked",
        by=owner,
        changes={"conversation_ids": change([], [conversation])},
    )


# -- 4. deletion --------------------------------------------------------------------------------


async def test_a_deleted_ticket_is_gone_and_ticket_deleted_is_published(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner, subject="Delete me")

    deleted = await desk.gateway.delete(f"/api/v1/tickets/{ticket['id']}", headers=owner.auth)

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    gone = await desk.gateway.get(f"/api/v1/tickets/{ticket['id']}", headers=owner.auth)
    assert_problem(gone, 404, "not_found")
    assert_problem(await desk.patch(owner, ticket["id"], {"subject": "x"}), 404, "not_found")
    page = await desk.listed(owner, status=ALL_STATUSES)
    assert ticket["id"] not in [item["id"] for item in page["items"]]
    event = await desk.published(ticket["id"], 2)
    assert event["type"] == "ticket.deleted"
    assert event["actor"] == owner.actor
    assert event["data"]["changes"] == {"deleted": change(False, True)}
    assert event["data"]["ticket"]["subject"] == "Delete me"


async def test_deleting_a_ticket_frees_its_conversations(desk: Desk, owner: Person) -> None:
    first, second = await desk.create(owner), await desk.create(owner)
    conversation = f"conv_{uuid4().hex[:8]}"
    path = "/api/v1/tickets/{}/conversations"
    linked = await desk.gateway.post(
        path.format(first["id"]), json={"conversation_id": conversation}, headers=owner.auth
    )
    assert linked.status_code == 200, linked.text

    deleted = await desk.gateway.delete(f"/api/v1/tickets/{first['id']}", headers=owner.auth)
    relinked = await desk.gateway.post(
        path.format(second["id"]), json={"conversation_id": conversation}, headers=owner.auth
    )

    assert deleted.status_code == 204, deleted.text
    assert relinked.status_code == 200, relinked.text
    assert relinked.json()["conversation_ids"] == [conversation]


# -- 5. ETag / If-Match -------------------------------------------------------------------------


async def test_a_patch_with_the_current_etag_succeeds(desk: Desk, owner: Person) -> None:
    ticket = await desk.create(owner)
    etag = (await desk.gateway.get(f"/api/v1/tickets/{ticket['id']}", headers=owner.auth)).headers[
        "ETag"
    ]

    answer = await desk.patch(owner, ticket["id"], {"priority": "high"}, if_match=etag)

    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == '"2"'
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.priority_changed",
        by=owner,
        changes={"priority": change("normal", "high")},
    )


async def test_a_patch_with_a_stale_etag_is_refused_and_changes_nothing(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner, subject="First")
    await desk.changed(owner, ticket["id"], {"subject": "Second"})
    before = await desk.state(owner, ticket["id"])

    answer = await desk.patch(owner, ticket["id"], {"subject": "Third"}, if_match='"1"')

    assert_problem(answer, 412, "stale_version")
    assert await desk.state(owner, ticket["id"]) == before
    assert before[1]["subject"] == "Second"
    assert before[1]["version"] == 2


@pytest.mark.parametrize("if_match", ['2"', '"two"', "*", "null", 'W/"', '"1", "2"'])
async def test_an_if_match_that_is_no_etag_of_this_api_is_refused_and_changes_nothing(
    desk: Desk, owner: Person, if_match: str
) -> None:
    ticket = await desk.create(owner, subject="First")
    before = await desk.state(owner, ticket["id"])

    answer = await desk.patch(owner, ticket["id"], {"subject": "Second"}, if_match=if_match)

    problem = assert_problem(answer, 422, "invalid_if_match")
    assert "send the ETag you received" in problem["detail"]
    assert await desk.state(owner, ticket["id"]) == before


async def test_of_two_concurrent_patches_with_the_same_etag_exactly_one_wins(
    desk: Desk, owner: Person
) -> None:
    ticket = await desk.create(owner, subject="Original")
    tickets_before, outbox_before = await desk.system.ticket_core_counts()

    answers = await asyncio.gather(
        desk.patch(owner, ticket["id"], {"subject": "Alice's"}, if_match='"1"'),
        desk.patch(owner, ticket["id"], {"subject": "Bob's"}, if_match='"1"'),
    )

    winner, loser = sorted(answers, key=lambda answer: answer.status_code)
    assert winner.status_code == 200, winner.text
    refusals = {409: "concurrent_update", 412: "stale_version"}
    assert loser.status_code in refusals, loser.text
    assert_problem(loser, loser.status_code, refusals[loser.status_code])
    final = await desk.get(owner, ticket["id"])
    assert final["version"] == 2
    assert final["subject"] == winner.json()["subject"]
    assert await desk.system.ticket_core_counts() == (tickets_before, outbox_before + 1)


# -- 6. Idempotency-Key -------------------------------------------------------------------------


async def test_the_same_idempotency_key_twice_creates_one_ticket(desk: Desk, owner: Person) -> None:
    tickets_before, outbox_before = await desk.system.ticket_core_counts()
    headers = {**owner.auth, "Idempotency-Key": "create-checkout-1"}
    request = {"subject": "Checkout fails", "priority": "high"}

    first = await desk.gateway.post("/api/v1/tickets", json=request, headers=headers)
    again = await desk.gateway.post("/api/v1/tickets", json=request, headers=headers)

    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    page = await desk.listed(owner, status=ALL_STATUSES)
    assert [item["id"] for item in page["items"]] == [first.json()["id"]]
    assert await desk.system.ticket_core_counts() == (tickets_before + 1, outbox_before + 1)


async def test_the_same_idempotency_key_with_another_body_is_refused(
    desk: Desk, owner: Person
) -> None:
    headers = {**owner.auth, "Idempotency-Key": "create-checkout-2"}
    first = await desk.gateway.post("/api/v1/tickets", json={"subject": "One"}, headers=headers)
    assert first.status_code == 201, first.text
    before = await desk.system.ticket_core_counts()

    answer = await desk.gateway.post("/api/v1/tickets", json={"subject": "Two"}, headers=headers)

    assert_problem(answer, 409, "idempotency_key_reused")
    assert await desk.system.ticket_core_counts() == before
    page = await desk.listed(owner, status=ALL_STATUSES)
    assert [item["subject"] for item in page["items"]] == ["One"]


# -- 7. roles -----------------------------------------------------------------------------------

# (method, path under the ticket, body): the ways to work a ticket.
WORK = [
    pytest.param("PATCH", "", {"subject": "Taken over"}, id="edit-subject"),
    pytest.param("PATCH", "", {"description": "Rewritten"}, id="edit-description"),
    pytest.param("PATCH", "", {"priority": "critical"}, id="change-priority"),
    pytest.param("PATCH", "", {"status": "open"}, id="change-status"),
    pytest.param("POST", "/notes", {"body": "A note"}, id="add-note"),
    pytest.param("POST", "/conversations", {"conversation_id": "conv_x"}, id="link-conversation"),
]


async def refused_without_a_trace(
    desk: Desk, crew: Crew, who: Person, ticket_id: str, request: tuple[str, str, Json | None]
) -> None:
    method, suffix, json = request
    before = await desk.state(crew.owner, ticket_id)

    answer = await desk.gateway.request(
        method, f"/api/v1/tickets/{ticket_id}{suffix}", json=json, headers=who.auth
    )

    assert_problem(answer, 403, "forbidden")
    assert await desk.state(crew.owner, ticket_id) == before


async def test_a_guest_cannot_create_a_ticket(desk: Desk, crew: Crew) -> None:
    before = await desk.system.ticket_core_counts()

    answer = await desk.gateway.post(
        "/api/v1/tickets", json={"subject": "From a guest"}, headers=crew.guest.auth
    )

    assert_problem(answer, 403, "forbidden")
    assert await desk.system.ticket_core_counts() == before


@pytest.mark.parametrize(("method", "suffix", "json"), WORK)
async def test_a_guest_cannot_work_any_ticket(
    desk: Desk, crew: Crew, method: str, suffix: str, json: Json
) -> None:
    ticket = await desk.create(crew.owner)

    await refused_without_a_trace(desk, crew, crew.guest, ticket["id"], (method, suffix, json))


@pytest.mark.parametrize(("method", "suffix", "json"), WORK)
async def test_a_member_cannot_work_a_ticket_assigned_to_someone_else(
    desk: Desk, crew: Crew, method: str, suffix: str, json: Json
) -> None:
    ticket = await desk.create(crew.owner, assignee_id=crew.other_member.member_id)

    await refused_without_a_trace(desk, crew, crew.member, ticket["id"], (method, suffix, json))


@pytest.mark.parametrize(("method", "suffix", "json"), WORK)
async def test_a_member_cannot_work_an_unassigned_ticket(
    desk: Desk, crew: Crew, method: str, suffix: str, json: Json
) -> None:
    ticket = await desk.create(crew.owner)

    await refused_without_a_trace(desk, crew, crew.member, ticket["id"], (method, suffix, json))


async def test_a_member_works_a_ticket_assigned_to_them(desk: Desk, crew: Crew) -> None:
    ticket = await desk.create(crew.owner, subject="Mine", assignee_id=crew.member.member_id)

    edited = await desk.changed(crew.member, ticket["id"], {"subject": "Mine, in progress"})
    moved = await desk.changed(crew.member, ticket["id"], {"status": "in_progress"})

    assert edited["subject"] == "Mine, in progress"
    assert moved["status"] == "in_progress"
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.edited",
        by=crew.member,
        changes={"subject": change("Mine", "Mine, in progress")},
    )
    await desk.assert_recorded(
        ticket["id"],
        sequence=3,
        type_="ticket.status_changed",
        by=crew.member,
        changes={"status": change("new", "in_progress")},
    )


# Owner/admin-only moves a member may not make even on a ticket assigned to them. The
# assignee is filled in by the test ("other" or "self").
OWNER_OR_ADMIN_ONLY = [
    pytest.param("PATCH", "", {"assignee_id": "other"}, id="reassign-to-another-member"),
    pytest.param("PATCH", "", {"assignee_id": None}, id="unassign"),
    pytest.param("PATCH", "", {"status": "closed"}, id="close"),
    pytest.param("PATCH", "", {"status": "spam"}, id="mark-spam"),
    pytest.param("DELETE", "", None, id="delete"),
]


@pytest.mark.parametrize(("method", "suffix", "json"), OWNER_OR_ADMIN_ONLY)
async def test_a_member_cannot_assign_close_spam_or_delete_even_their_own_ticket(
    desk: Desk, crew: Crew, method: str, suffix: str, json: Json | None
) -> None:
    ticket = await desk.create(crew.owner, assignee_id=crew.member.member_id)
    if json is not None and json.get("assignee_id") == "other":
        json = {"assignee_id": crew.other_member.member_id}

    await refused_without_a_trace(desk, crew, crew.member, ticket["id"], (method, suffix, json))


async def test_a_member_cannot_assign_an_unassigned_ticket_to_themselves(
    desk: Desk, crew: Crew
) -> None:
    ticket = await desk.create(crew.owner)

    await refused_without_a_trace(
        desk, crew, crew.member, ticket["id"], ("PATCH", "", {"assignee_id": crew.member.member_id})
    )


async def test_a_member_may_create_a_ticket_assigned_to_themselves(desk: Desk, crew: Crew) -> None:
    ticket = await desk.create(crew.member, assignee_id=crew.member.member_id)

    assert ticket["assignee_id"] == crew.member.member_id
    event = await desk.published(ticket["id"], 1)
    assert event["type"] == "ticket.created"
    assert event["actor"] == crew.member.actor
    assert event["data"]["changes"]["assignee_id"] == change(None, crew.member.member_id)
    entry = await desk.logged(crew.member, ticket["id"], 1)
    assert entry["changes"]["assignee_id"] == change(None, crew.member.member_id)


async def test_a_member_cannot_create_a_ticket_assigned_to_another_member(
    desk: Desk, crew: Crew
) -> None:
    before = await desk.system.ticket_core_counts()

    answer = await desk.gateway.post(
        "/api/v1/tickets",
        json={"subject": "For you", "assignee_id": crew.other_member.member_id},
        headers=crew.member.auth,
    )

    assert_problem(answer, 403, "forbidden")
    assert await desk.system.ticket_core_counts() == before


async def test_an_admin_closes_a_ticket(desk: Desk, crew: Crew) -> None:
    ticket = await desk.create(crew.owner, assignee_id=crew.member.member_id)

    closed = await desk.changed(crew.admin, ticket["id"], {"status": "closed"})

    assert closed["status"] == "closed"
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.status_changed",
        by=crew.admin,
        changes={"status": change("new", "closed")},
    )


async def test_a_member_cannot_reopen_a_closed_ticket_assigned_to_them(
    desk: Desk, crew: Crew
) -> None:
    ticket = await desk.create(crew.owner, assignee_id=crew.member.member_id)
    await desk.changed(crew.owner, ticket["id"], {"status": "closed"})

    await refused_without_a_trace(
        desk, crew, crew.member, ticket["id"], ("PATCH", "", {"status": "open"})
    )


@pytest.mark.parametrize("role", ["owner", "admin"])
async def test_an_owner_or_admin_reopens_a_closed_ticket(desk: Desk, crew: Crew, role: str) -> None:
    reopener: Person = getattr(crew, role)
    ticket = await desk.create(crew.owner, assignee_id=crew.member.member_id)
    await desk.changed(crew.owner, ticket["id"], {"status": "closed"})

    reopened = await desk.changed(reopener, ticket["id"], {"status": "open"})

    assert reopened["status"] == "open"
    await desk.assert_recorded(
        ticket["id"],
        sequence=3,
        type_="ticket.status_changed",
        by=reopener,
        changes={"status": change("closed", "open")},
    )


async def test_not_spam_sends_a_spam_ticket_back_to_new(desk: Desk, crew: Crew) -> None:
    ticket = await desk.create(crew.owner)
    await desk.changed(crew.admin, ticket["id"], {"status": "spam"})

    restored = await desk.changed(crew.admin, ticket["id"], {"status": "new"})

    assert restored["status"] == "new"
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.status_changed",
        by=crew.admin,
        changes={"status": change("new", "spam")},
    )
    await desk.assert_recorded(
        ticket["id"],
        sequence=3,
        type_="ticket.status_changed",
        by=crew.admin,
        changes={"status": change("spam", "new")},
    )


# -- 8. bad input -------------------------------------------------------------------------------

BAD_INPUT = [
    pytest.param("PATCH", "", {"status": "reopened"}, "validation_failed", id="unknown-status"),
    pytest.param("PATCH", "", {"priority": "urgent"}, "validation_failed", id="unknown-priority"),
    pytest.param("PATCH", "", {"subject": "   "}, "subject_required", id="blank-subject"),
    pytest.param("PATCH", "", {"subject": "x" * 201}, "validation_failed", id="subject-201"),
    pytest.param(
        "PATCH", "", {"description": "x" * 20_001}, "validation_failed", id="description-20001"
    ),
    pytest.param("PATCH", "", {"assignee_id": str(uuid4())}, "unknown_assignee", id="no-member"),
    pytest.param("PATCH", "", {"version": 7}, "validation_failed", id="unknown-field"),
    pytest.param("POST", "/notes", {"body": ""}, "validation_failed", id="empty-note"),
    pytest.param("POST", "/notes", {"body": "  \n "}, "note_required", id="blank-note"),
    pytest.param("POST", "/notes", {"body": "x" * 10_001}, "validation_failed", id="note-10001"),
    pytest.param(
        "POST",
        "/conversations",
        {"conversation_id": "bad id!"},
        "invalid_conversation_id",
        id="link-malformed-conversation",
    ),
    pytest.param(
        "DELETE",
        "/conversations/bad id!",
        None,
        "invalid_conversation_id",
        id="unlink-malformed-conversation",
    ),
]


# 422: the request breaks the document's rules; 409: it is well formed but the workspace's
# state refuses it (no such member).
STATUS_OF = {"unknown_assignee": 409}


@pytest.mark.parametrize(("method", "suffix", "json", "code"), BAD_INPUT)
async def test_bad_input_is_refused_clearly_and_nothing_is_stored_or_published(
    desk: Desk, crew: Crew, method: str, suffix: str, json: Json | None, code: str
) -> None:
    ticket = await desk.create(crew.owner, subject="Untouched")
    before = await desk.state(crew.owner, ticket["id"])

    answer = await desk.gateway.request(
        method, f"/api/v1/tickets/{ticket['id']}{suffix}", json=json, headers=crew.owner.auth
    )

    assert_problem(answer, STATUS_OF.get(code, 422), code)
    assert await desk.state(crew.owner, ticket["id"]) == before


async def test_a_move_the_transition_table_forbids_is_refused(desk: Desk, crew: Crew) -> None:
    ticket = await desk.create(crew.owner)
    await desk.changed(crew.owner, ticket["id"], {"status": "spam"})
    before = await desk.state(crew.owner, ticket["id"])

    answer = await desk.patch(crew.owner, ticket["id"], {"status": "open"})

    problem = assert_problem(answer, 409, "transition_not_allowed")
    assert "new" in problem["detail"]  # says where a spam ticket can go
    assert await desk.state(crew.owner, ticket["id"]) == before


async def test_an_assignee_from_another_workspace_is_unknown(desk: Desk, crew: Crew) -> None:
    stranger = found_workspace(desk.system)
    ticket = await desk.create(crew.owner)
    before = await desk.state(crew.owner, ticket["id"])

    answer = await desk.patch(crew.owner, ticket["id"], {"assignee_id": stranger.member_id})

    assert_problem(answer, 409, "unknown_assignee")
    assert await desk.state(crew.owner, ticket["id"]) == before


async def test_a_ticket_cannot_be_created_for_an_assignee_of_another_workspace(
    desk: Desk, crew: Crew
) -> None:
    stranger = found_workspace(desk.system)
    before = await desk.system.ticket_core_counts()

    answer = await desk.gateway.post(
        "/api/v1/tickets",
        json={"subject": "x", "assignee_id": stranger.member_id},
        headers=crew.owner.auth,
    )

    assert_problem(answer, 409, "unknown_assignee")
    assert await desk.system.ticket_core_counts() == before


ANOTHER_WORKSPACES_TICKET = [
    pytest.param("GET", "", None, id="get"),
    pytest.param("PATCH", "", {"subject": "Hijacked"}, id="patch"),
    pytest.param("POST", "/notes", {"body": "Hijacked"}, id="add-note"),
    pytest.param("POST", "/conversations", {"conversation_id": "conv_h"}, id="link"),
    pytest.param("GET", "/activity", None, id="activity"),
    pytest.param("DELETE", "", None, id="delete"),
]


@pytest.mark.parametrize(("method", "suffix", "json"), ANOTHER_WORKSPACES_TICKET)
async def test_a_ticket_of_another_workspace_is_not_found_for_any_use(
    desk: Desk, crew: Crew, method: str, suffix: str, json: Json | None
) -> None:
    theirs = found_workspace(desk.system)
    ticket = await desk.create(theirs, subject="Their secret")
    before = await desk.state(theirs, ticket["id"])

    answer = await desk.gateway.request(
        method, f"/api/v1/tickets/{ticket['id']}{suffix}", json=json, headers=crew.owner.auth
    )

    assert_problem(answer, 404, "not_found")
    assert "Their secret" not in answer.text
    assert await desk.state(theirs, ticket["id"]) == before


# -- 9. members ---------------------------------------------------------------------------------


async def test_adding_a_member_publishes_member_added(desk: Desk, owner: Person) -> None:
    answer = await desk.gateway.post(
        "/api/v1/members", json={"email": "Agent@Acme.io", "role": "member"}, headers=owner.auth
    )

    assert answer.status_code == 201, answer.text
    member = answer.json()
    assert member["email"] == "agent@acme.io"
    assert member["role"] == "member"
    assert member["workspace_id"] == owner.workspace_id
    listed = await desk.gateway.get("/api/v1/members", headers=owner.auth)
    assert member["id"] in [m["id"] for m in listed.json()]
    event = await desk.published(member["id"], 1)
    assert event["type"] == "member.added"
    assert event["subject"] == member["id"]
    assert event["workspace_id"] == owner.workspace_id
    assert event["actor"] == owner.actor
    assert event["data"]["changes"] == {"role": change(None, "member")}
    assert event["data"]["member"]["email"] == "agent@acme.io"


async def test_changing_a_role_publishes_member_role_changed(desk: Desk, owner: Person) -> None:
    agent = await hire(desk.system, desk.gateway, owner, "member")

    answer = await desk.gateway.patch(
        f"/api/v1/members/{agent.member_id}", json={"role": "admin"}, headers=owner.auth
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "admin"
    event = await desk.published(agent.member_id, 2)
    assert event["type"] == "member.role_changed"
    assert event["actor"] == owner.actor
    assert event["data"]["changes"] == {"role": change("member", "admin")}
    # The role is read per request: the promoted member may now close tickets.
    ticket = await desk.create(owner)
    assert (await desk.changed(agent, ticket["id"], {"status": "closed"}))["status"] == "closed"


async def test_removing_a_member_publishes_member_removed_and_revokes_their_token(
    desk: Desk, owner: Person
) -> None:
    agent = await hire(desk.system, desk.gateway, owner, "member")

    answer = await desk.gateway.delete(f"/api/v1/members/{agent.member_id}", headers=owner.auth)

    assert answer.status_code == 204, answer.text
    event = await desk.published(agent.member_id, 2)
    assert event["type"] == "member.removed"
    assert event["actor"] == owner.actor
    assert event["data"]["changes"] == {"role": change("member", None)}
    listed = await desk.gateway.get("/api/v1/members", headers=owner.auth)
    assert agent.member_id not in [m["id"] for m in listed.json()]
    refused = await desk.gateway.get("/api/v1/tickets", headers=agent.auth)
    assert_problem(refused, 401, "unknown_member")


async def test_removing_a_member_sends_their_tickets_back_to_the_queue(
    desk: Desk, owner: Person
) -> None:
    agent = await hire(desk.system, desk.gateway, owner, "member")
    ticket = await desk.create(owner, assignee_id=agent.member_id)

    answer = await desk.gateway.delete(f"/api/v1/members/{agent.member_id}", headers=owner.auth)

    assert answer.status_code == 204, answer.text
    assert (await desk.get(owner, ticket["id"]))["assignee_id"] is None
    await desk.assert_recorded(
        ticket["id"],
        sequence=2,
        type_="ticket.unassigned",
        by=owner,
        changes={"assignee_id": change(agent.member_id, None)},
    )


@pytest.mark.parametrize(
    ("method", "json"),
    [
        pytest.param("PATCH", {"role": "admin"}, id="demote"),
        pytest.param("DELETE", None, id="remove"),
    ],
)
async def test_the_last_owner_can_be_neither_demoted_nor_removed(
    desk: Desk, owner: Person, method: str, json: Json | None
) -> None:
    before = await desk.system.ticket_core_counts()

    answer = await desk.gateway.request(
        method, f"/api/v1/members/{owner.member_id}", json=json, headers=owner.auth
    )

    assert_problem(answer, 409, "last_owner")
    assert await desk.system.ticket_core_counts() == before
    still = await desk.gateway.get(f"/api/v1/members/{owner.member_id}", headers=owner.auth)
    assert still.json()["role"] == "owner"


async def test_an_owner_can_be_removed_while_another_owner_remains(
    desk: Desk, owner: Person
) -> None:
    second = await hire(desk.system, desk.gateway, owner, "owner")

    removed = await desk.gateway.delete(f"/api/v1/members/{owner.member_id}", headers=second.auth)
    last = await desk.gateway.delete(f"/api/v1/members/{second.member_id}", headers=second.auth)

    assert removed.status_code == 204, removed.text
    assert_problem(last, 409, "last_owner")


async def test_an_admin_cannot_add_an_owner(desk: Desk, owner: Person) -> None:
    admin = await hire(desk.system, desk.gateway, owner, "admin")
    before = await desk.system.ticket_core_counts()

    answer = await desk.gateway.post(
        "/api/v1/members", json={"email": "boss@acme.io", "role": "owner"}, headers=admin.auth
    )

    assert_problem(answer, 403, "forbidden")
    assert await desk.system.ticket_core_counts() == before


async def test_an_admin_cannot_promote_a_member_to_owner(desk: Desk, owner: Person) -> None:
    admin = await hire(desk.system, desk.gateway, owner, "admin")
    agent = await hire(desk.system, desk.gateway, owner, "member")
    before = await desk.system.ticket_core_counts()

    answer = await desk.gateway.patch(
        f"/api/v1/members/{agent.member_id}", json={"role": "owner"}, headers=admin.auth
    )

    assert_problem(answer, 403, "forbidden")
    assert await desk.system.ticket_core_counts() == before
    still = await desk.gateway.get(f"/api/v1/members/{agent.member_id}", headers=owner.auth)
    assert still.json()["role"] == "member"


@pytest.mark.parametrize("again", ["agent@acme.io", "AGENT@acme.IO"])
async def test_adding_the_same_email_twice_is_refused(
    desk: Desk, owner: Person, again: str
) -> None:
    first = await desk.gateway.post(
        "/api/v1/members", json={"email": "agent@acme.io"}, headers=owner.auth
    )
    assert first.status_code == 201, first.text
    before = await desk.system.ticket_core_counts()

    answer = await desk.gateway.post(
        "/api/v1/members", json={"email": again, "role": "admin"}, headers=owner.auth
    )

    assert_problem(answer, 409, "member_exists")
    assert await desk.system.ticket_core_counts() == before
    listed = await desk.gateway.get("/api/v1/members", headers=owner.auth)
    assert [m["email"] for m in listed.json()].count("agent@acme.io") == 1


# -- 10. the list -------------------------------------------------------------------------------


async def tickets_in_every_status(desk: Desk, owner: Person) -> dict[str, str]:
    """One ticket per status, subject = its status; the ids by status."""
    paths: dict[str, list[str]] = {
        "new": [],
        "open": ["open"],
        "in_progress": ["in_progress"],
        "waiting_on_customer": ["waiting_on_customer"],
        "resolved": ["resolved"],
        "closed": ["closed"],
        "spam": ["spam"],
    }
    ids: dict[str, str] = {}
    for status, moves in paths.items():
        ticket = await desk.create(owner, subject=f"Status {status}")
        for move in moves:
            await desk.changed(owner, ticket["id"], {"status": move})
        ids[status] = ticket["id"]
    return ids


async def test_the_list_hides_closed_and_spam_by_default(desk: Desk, owner: Person) -> None:
    ids = await tickets_in_every_status(desk, owner)

    page = await desk.listed(owner)

    shown = {item["status"] for item in page["items"]}
    assert shown == {"new", "open", "in_progress", "waiting_on_customer", "resolved"}
    assert {item["id"] for item in page["items"]} == {ids[s] for s in shown}
    assert page["hidden_matches"] == {"closed": 1, "spam": 1}
    assert page["next_cursor"] is None


@pytest.mark.parametrize("status", ["closed", "spam"])
async def test_a_status_filter_shows_the_hidden_statuses(
    desk: Desk, owner: Person, status: str
) -> None:
    ids = await tickets_in_every_status(desk, owner)

    page = await desk.listed(owner, status=status)

    assert [item["id"] for item in page["items"]] == [ids[status]]
    assert page["hidden_matches"] == {s: 1 for s in ids if s != status}


async def test_search_finds_tickets_by_subject_ignoring_case(desk: Desk, owner: Person) -> None:
    wanted = await desk.create(owner, subject="Checkout FAILS on Safari")
    await desk.create(owner, subject="Refund request", description="checkout fails")

    page = await desk.listed(owner, q="checkout fails")

    assert [item["id"] for item in page["items"]] == [wanted["id"]]
    assert page["hidden_matches"] == {}


async def test_search_ignores_the_case_of_non_ascii_letters(desk: Desk, owner: Person) -> None:
    wanted = await desk.create(owner, subject="ÜBERWEISUNG fehlgeschlagen")

    page = await desk.listed(owner, q="überweisung")

    assert [item["id"] for item in page["items"]] == [wanted["id"]]


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        pytest.param("%", ["100% off"], id="percent"),
        pytest.param("0%", ["100% off"], id="digit-percent"),
        pytest.param("_", ["snake_case"], id="underscore"),
        pytest.param("e_c", ["snake_case"], id="letter-underscore-letter"),
        pytest.param("\\", ["back\\slash"], id="backslash"),
        pytest.param("o'b", ["O'Brien's order"], id="quote"),
        pytest.param("'; drop table tickets; --", [], id="sql-injection"),
    ],
)
async def test_search_matches_wildcard_characters_literally(
    desk: Desk, owner: Person, query: str, matches: list[str]
) -> None:
    for subject in (
        "100% off",
        "1000 off",
        "snake_case",
        "snakeXcase",
        "back\\slash",
        "O'Brien's order",
    ):
        await desk.create(owner, subject=subject)

    page = await desk.listed(owner, q=query)

    assert sorted(item["subject"] for item in page["items"]) == matches


async def test_search_reports_matches_the_status_filter_hid(desk: Desk, owner: Person) -> None:
    shown = await desk.create(owner, subject="Refund for order 7")
    hidden = await desk.create(owner, subject="Refund for order 8")
    await desk.changed(owner, hidden["id"], {"status": "closed"})
    await desk.create(owner, subject="Something else")

    page = await desk.listed(owner, q="refund")

    assert [item["id"] for item in page["items"]] == [shown["id"]]
    assert page["hidden_matches"] == {"closed": 1}


async def test_search_finds_every_word_in_any_order(desk: Desk, owner: Person) -> None:
    wanted = await desk.create(owner, subject="Printer on floor 3 is broken")
    await desk.create(owner, subject="Printer works fine")

    page = await desk.listed(owner, q="BROKEN printer")

    assert [item["id"] for item in page["items"]] == [wanted["id"]]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("priority", ["critical", "high", "normal", "low"]),
        ("created", ["normal", "critical", "high", "low"]),
        ("updated", ["high", "critical", "normal", "low"]),
    ],
)
async def test_the_list_sorts_by_priority_creation_or_last_change(
    desk: Desk, owner: Person, sort: str, expected: list[str]
) -> None:
    tag = uuid4().hex[:8]
    made = {}
    for priority in ("low", "high", "critical", "normal"):
        made[priority] = await desk.create(owner, subject=f"{tag} {priority}", priority=priority)
    await desk.changed(owner, made["critical"]["id"], {"description": "touched"})
    await desk.changed(owner, made["high"]["id"], {"description": "touched last"})

    page = await desk.listed(owner, q=tag, sort=sort)

    assert [item["priority"] for item in page["items"]] == expected


async def test_pages_of_a_sort_order_cover_every_ticket_once(desk: Desk, owner: Person) -> None:
    tag = uuid4().hex[:8]
    for n in range(7):
        await desk.create(owner, subject=f"{tag} {n}", priority=["low", "high"][n % 2])
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"q": tag, "sort": "priority", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await desk.listed(owner, **params)
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sort": "oldest"}, "validation_failed"),
        ({"cursor": "bm9wZQ=="}, "invalid_cursor"),
        ({"limit": 0}, "validation_failed"),
        ({"assignee_id": "someone"}, "invalid_assignee_filter"),
        ({"status": "archived"}, "validation_failed"),
    ],
)
async def test_a_bad_list_parameter_is_refused_and_says_which(
    desk: Desk, owner: Person, params: dict[str, Any], code: str
) -> None:
    answer = await desk.gateway.get("/api/v1/tickets", params=params, headers=owner.auth)

    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


async def test_counts_per_status_cover_every_status_for_the_tabs(desk: Desk, owner: Person) -> None:
    await tickets_in_every_status(desk, owner)
    await desk.create(owner, subject="Another new one", priority="critical")

    answer = await desk.gateway.get("/api/v1/ticket-counts", headers=owner.auth)
    critical = await desk.gateway.get(
        "/api/v1/ticket-counts", params={"priority": "critical"}, headers=owner.auth
    )
    searched = await desk.gateway.get(
        "/api/v1/ticket-counts", params={"q": "status"}, headers=owner.auth
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "counts": {
            "new": 2,
            "open": 1,
            "in_progress": 1,
            "waiting_on_customer": 1,
            "resolved": 1,
            "closed": 1,
            "spam": 1,
        },
        "total": 8,
        "capped": [],
    }
    assert critical.json()["total"] == 1
    assert critical.json()["counts"]["new"] == 1
    assert searched.json()["total"] == 7


async def test_counts_follow_changes_and_deletions(desk: Desk, owner: Person) -> None:
    ticket = await desk.create(owner, subject="Counted")
    await desk.changed(owner, ticket["id"], {"status": "spam"})

    async def counts() -> dict[str, int]:
        answer = await desk.gateway.get("/api/v1/ticket-counts", headers=owner.auth)
        result: dict[str, int] = answer.json()["counts"]
        return result

    assert (await counts())["spam"] == 1
    assert (await counts())["new"] == 0
    deleted = await desk.gateway.delete(f"/api/v1/tickets/{ticket['id']}", headers=owner.auth)
    assert deleted.status_code == 204
    assert sum((await counts()).values()) == 0
