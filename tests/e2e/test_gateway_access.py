"""Who may call what, end to end through the gateway, exactly as the dashboard calls it.

1. The access matrix: every dashboard endpoint, called by an owner, an admin, a member and a
   guest of one workspace. The expected answers come from ARCHITECTURE.md, "Roles and
   permissions". Every case works on targets of its own (a fresh ticket, member or assistant)
   wherever the call changes state, so the cases stay independent. A refusal must be a
   problem+json with a stable `code` and must change nothing: what the call could have touched
   is read again as the owner, along with ticket-core's (tickets, outbox) counts.
2. Isolation: a workspace's token never reaches another workspace's tickets, activity,
   conversations, members or assistants by id (404, and nothing changes there), and another
   workspace's tickets never show in a list or a search, not even as `hidden_matches`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import uuid4

import httpx
import pytest

from tests.e2e.conftest import Assistant, System, configure_assistant, hire
from tests.e2e.conftest import Workspace as Person
from tests.support.waiting import eventually

Json = dict[str, Any]
ROLES = ("owner", "admin", "member", "guest")
ALL_STATUSES = ["new", "open", "in_progress", "waiting_on_customer", "resolved", "closed", "spam"]
SENT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC).isoformat()

# -- who acts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crew:
    """One workspace with a member of every role, a second plain member, and an assistant
    whose widget already turned one conversation into a ticket."""

    owner: Person
    admin: Person
    member: Person
    other_member: Person
    guest: Person
    assistant: str
    conversation: str

    def by_role(self, role: str) -> Person:
        person: Person = getattr(self, role)
        return person


def found_workspace(system: System) -> Person:
    """A new workspace (the operator's `helpdesk create-workspace`); its founding owner."""
    team = system.create_workspace()
    return Person(team.workspace_id, team.member_id, team.token)


async def add_member(client: httpx.AsyncClient, boss: Person, role: str) -> str:
    """`boss` adds a member with `role` through the dashboard; the new member's id."""
    added = await client.post(
        "/api/v1/members",
        json={"email": f"{role}-{uuid4().hex[:10]}@acme.io", "role": role},
        headers=boss.auth,
    )
    assert added.status_code == 201, added.text
    member_id: str = added.json()["id"]
    return member_id


async def create_ticket(
    client: httpx.AsyncClient, who: Person, subject: str = "Checkout fails", **fields: Any
) -> Json:
    answer = await client.post(
        "/api/v1/tickets", json={"subject": subject, **fields}, headers=who.auth
    )
    assert answer.status_code == 201, answer.text
    ticket: Json = answer.json()
    return ticket


async def patch_ticket(
    client: httpx.AsyncClient, who: Person, ticket_id: str, changes: Json
) -> None:
    answer = await client.patch(f"/api/v1/tickets/{ticket_id}", json=changes, headers=who.auth)
    assert answer.status_code == 200, answer.text


async def link(client: httpx.AsyncClient, who: Person, ticket_id: str, conversation: str) -> None:
    answer = await client.post(
        f"/api/v1/tickets/{ticket_id}/conversations",
        json={"conversation_id": conversation},
        headers=who.auth,
    )
    assert answer.status_code == 200, answer.text


async def widget_ticket(system: System, assistant: Assistant) -> tuple[str, str]:
    """A visitor's conversation sent through the public widget API until it is a ticket:
    (conversation id, ticket id)."""
    conversation = f"conv-{uuid4().hex[:10]}"
    request = {
        "request_id": f"req-{uuid4()}",
        "assistant_id": assistant.id,
        "conversation": {
            "id": conversation,
            "messages": [
                {"role": "visitor", "text": "My invoice is wrong", "sent_at": SENT},
                {"role": "assistant", "text": "I will ask a colleague.", "sent_at": SENT},
            ],
        },
        "contact": {"name": "Ada Lovelace", "email": "ada@example.com"},
    }
    async with httpx.AsyncClient(
        base_url=system.widget, timeout=15.0, headers=assistant.headers
    ) as widget:
        accepted = await widget.post("/widget/v1/ticket-requests", json=request)
        assert accepted.status_code == 202, accepted.text

        async def created() -> Json | None:
            answer = await widget.get(f"/widget/v1/ticket-requests/{request['request_id']}")
            if answer.status_code == 404:
                return None
            outcome: Json = answer.json()
            return outcome if outcome["status"] != "pending" else None

        outcome = await eventually(created, what=f"widget request on {conversation} to settle")
    assert outcome["status"] == "created", outcome
    ticket_id: str = outcome["ticket_id"]
    return conversation, ticket_id


async def settle_ticket(client: httpx.AsyncClient, boss: Person, ticket_id: str, conv: str) -> None:
    """Wait until everything the system does on its own after a widget ticket is done (the
    creation in the activity log, the conversation knowing its ticket), so that what a test
    reads before and after a call can only differ by that call."""

    async def quiet() -> bool:
        activity = await client.get(f"/api/v1/tickets/{ticket_id}/activity", headers=boss.auth)
        conversation = await client.get(f"/api/v1/conversations/{conv}", headers=boss.auth)
        return (
            activity.status_code == 200
            and bool(activity.json()["items"])
            and conversation.status_code == 200
            and conversation.json()["ticket_id"] == ticket_id
        )

    await eventually(quiet, what=f"ticket {ticket_id} to settle")


@pytest.fixture(scope="module")
async def crew(system: System) -> AsyncIterator[Crew]:
    """Shared by the matrix cases of one system (minting a token takes a process each); every
    case that changes something makes its own target in it."""
    owner = found_workspace(system)
    async with httpx.AsyncClient(base_url=system.gateway, timeout=15.0) as client:
        admin = await hire(system, client, owner, "admin")
        member = await hire(system, client, owner, "member")
        other_member = await hire(system, client, owner, "member")
        guest = await hire(system, client, owner, "guest")
        assistant = await configure_assistant(client, owner)
        conversation, ticket_id = await widget_ticket(system, assistant)
        await settle_ticket(client, owner, ticket_id, conversation)
        yield Crew(owner, admin, member, other_member, guest, assistant.id, conversation)


@pytest.fixture(scope="module")
def rival(system: System) -> Person:
    """The owner of another workspace (B), whose data the crew's workspace (A) must not reach."""
    return found_workspace(system)


# -- reading back what a call may have changed -------------------------------------------------


State = tuple[tuple[int, int], list[tuple[str, int, Any]]]


async def observe(
    system: System, client: httpx.AsyncClient, who: Person, paths: list[str]
) -> State:
    """ticket-core's (tickets, outbox) counts and each path as `who` reads it (status and body:
    a ticket's `version` and `updated_at` included)."""
    reads = []
    for path in paths:
        answer = await client.get(path, headers=who.auth)
        reads.append((path, answer.status_code, answer.json() if answer.content else None))
    return await system.ticket_core_counts(), reads


def assert_problem(answer: httpx.Response, status: int, code: str | None = None) -> Json:
    assert answer.status_code == status, f"{answer.status_code} (wanted {status}): {answer.text}"
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    problem: Json = answer.json()
    assert problem.get("code"), problem
    assert problem["status"] == status, problem
    if code is not None:
        assert problem["code"] == code, problem
    return problem


# -- 1. every endpoint x every role -------------------------------------------------------------

# What each case gets made for it before the call (by the owner, whoever calls):
#   none               nothing: the call works on the workspace itself
#   ticket             a new unassigned ticket                      -> {ticket}
#   ticket_of_member   a new ticket assigned to the crew's member   -> {ticket}
#   linked_ticket[_of_member]  the same, with a conversation linked -> {ticket}, {linked}
#   member / owner     a new member with that role                  -> {target}
#   assistant          a new assistant with ticket settings saved   -> {assistant}
#   workspace          the next auto-close period to set            -> {next_days}
# Always there: {me} (the caller), {member} / {other_member} (the crew's plain members),
# {assistant} / {conversation} (the crew's assistant and its widget conversation),
# {new_conversation} (an id never linked) and {email} (an address not in the workspace).
Target = Literal[
    "none",
    "ticket",
    "ticket_of_member",
    "linked_ticket",
    "linked_ticket_of_member",
    "member",
    "owner",
    "assistant",
    "workspace",
]

TICKETS = "/api/v1/tickets?limit=200&" + "&".join(f"status={s}" for s in ALL_STATUSES)
TICKET = "/api/v1/tickets/{ticket}"
SETTINGS = "/api/v1/assistants/{assistant}/ticket-settings"
REQUESTS = "/api/v1/assistants/{assistant}/ticket-requests"
OK, CREATED, GONE, NO = 200, 201, 204, 403


@dataclass(frozen=True)
class Call:
    """One dashboard call and what each role gets: `expect` is (owner, admin, member, guest)."""

    id: str
    method: str
    path: str
    body: Json | None
    expect: tuple[int, int, int, int]
    target: Target = "none"
    reread: tuple[str, ...] = ()
    writes: bool = True

    def expected(self, role: str) -> int:
        return self.expect[ROLES.index(role)]


MATRIX = [
    # "view tickets, activity, linked conversations": everyone.
    Call("list-tickets", "GET", "/api/v1/tickets", None, (OK, OK, OK, OK), writes=False),
    Call("get-ticket", "GET", TICKET, None, (OK, OK, OK, OK), "ticket", (TICKET,), writes=False),
    Call(
        "get-activity",
        "GET",
        TICKET + "/activity",
        None,
        (OK, OK, OK, OK),
        "ticket",
        (TICKET,),
        writes=False,
    ),
    Call(
        "get-conversation",
        "GET",
        "/api/v1/conversations/{conversation}",
        None,
        (OK, OK, OK, OK),
        reread=("/api/v1/conversations/{conversation}",),
        writes=False,
    ),
    # "create a ticket": owner/admin/member (member: assignee none or self), not guest.
    Call(
        "create-ticket",
        "POST",
        "/api/v1/tickets",
        {"subject": "New from the matrix"},
        (CREATED, CREATED, CREATED, NO),
        reread=(TICKETS,),
    ),
    Call(
        "create-ticket-assigned-to-self",
        "POST",
        "/api/v1/tickets",
        {"subject": "Mine from the matrix", "assignee_id": "{me}"},
        (CREATED, CREATED, CREATED, NO),
        reread=(TICKETS,),
    ),
    Call(
        "create-ticket-assigned-to-another-member",
        "POST",
        "/api/v1/tickets",
        {"subject": "Theirs from the matrix", "assignee_id": "{other_member}"},
        (CREATED, CREATED, NO, NO),
        reread=(TICKETS,),
    ),
    # "edit ...; add notes; link conversations; change status (other than to closed)":
    # owner/admin any ticket, member only tickets assigned to them, guest never.
    Call(
        "patch-subject-assigned-to-member",
        "PATCH",
        TICKET,
        {"subject": "Edited by the matrix"},
        (OK, OK, OK, NO),
        "ticket_of_member",
        (TICKET,),
    ),
    Call(
        "patch-subject-unassigned",
        "PATCH",
        TICKET,
        {"subject": "Edited by the matrix"},
        (OK, OK, NO, NO),
        "ticket",
        (TICKET,),
    ),
    Call(
        "patch-status-open-assigned-to-member",
        "PATCH",
        TICKET,
        {"status": "open"},
        (OK, OK, OK, NO),
        "ticket_of_member",
        (TICKET,),
    ),
    Call(
        "add-note-assigned-to-member",
        "POST",
        TICKET + "/notes",
        {"body": "A note from the matrix"},
        (CREATED, CREATED, CREATED, NO),
        "ticket_of_member",
        (TICKET,),
    ),
    Call(
        "add-note-unassigned",
        "POST",
        TICKET + "/notes",
        {"body": "A note from the matrix"},
        (CREATED, CREATED, NO, NO),
        "ticket",
        (TICKET,),
    ),
    Call(
        "link-conversation-assigned-to-member",
        "POST",
        TICKET + "/conversations",
        {"conversation_id": "{new_conversation}"},
        (OK, OK, OK, NO),
        "ticket_of_member",
        (TICKET,),
    ),
    Call(
        "link-conversation-unassigned",
        "POST",
        TICKET + "/conversations",
        {"conversation_id": "{new_conversation}"},
        (OK, OK, NO, NO),
        "ticket",
        (TICKET,),
    ),
    Call(
        "unlink-conversation-assigned-to-member",
        "DELETE",
        TICKET + "/conversations/{linked}",
        None,
        (OK, OK, OK, NO),
        "linked_ticket_of_member",
        (TICKET,),
    ),
    Call(
        "unlink-conversation-unassigned",
        "DELETE",
        TICKET + "/conversations/{linked}",
        None,
        (OK, OK, NO, NO),
        "linked_ticket",
        (TICKET,),
    ),
    # "assign, reassign, unassign": owner/admin only.
    Call(
        "patch-assignee",
        "PATCH",
        TICKET,
        {"assignee_id": "{other_member}"},
        (OK, OK, NO, NO),
        "ticket",
        (TICKET,),
    ),
    # "close, mark spam / not spam, delete": owner/admin only, even on the member's own ticket.
    Call(
        "patch-status-closed-assigned-to-member",
        "PATCH",
        TICKET,
        {"status": "closed"},
        (OK, OK, NO, NO),
        "ticket_of_member",
        (TICKET,),
    ),
    Call(
        "delete-ticket-assigned-to-member",
        "DELETE",
        TICKET,
        None,
        (GONE, GONE, NO, NO),
        "ticket_of_member",
        (TICKET,),
    ),
    # "configure ticket settings (per-assistant widget settings)": owner/admin only; reading
    # them and the widget diagnostics is part of configuring (the gateway says "owner/admin").
    Call(
        "get-ticket-settings",
        "GET",
        SETTINGS,
        None,
        (OK, OK, NO, NO),
        reread=(SETTINGS,),
        writes=False,
    ),
    Call(
        "put-ticket-settings",
        "PUT",
        SETTINGS,
        {"ticket_creation_enabled": False, "require_contact_info": True},
        (OK, OK, NO, NO),
        "assistant",
        (SETTINGS,),
    ),
    Call(
        "get-ticket-requests",
        "GET",
        REQUESTS,
        None,
        (OK, OK, NO, NO),
        reread=(REQUESTS,),
        writes=False,
    ),
    # Workspace settings: the architecture names none; the gateway documents PATCH as
    # owner/admin (like the other settings) and reading them is for everyone.
    Call(
        "get-workspace",
        "GET",
        "/api/v1/workspace",
        None,
        (OK, OK, OK, OK),
        reread=("/api/v1/workspace",),
        writes=False,
    ),
    Call(
        "patch-workspace",
        "PATCH",
        "/api/v1/workspace",
        {"auto_close_after_days": "{next_days}"},
        (OK, OK, NO, NO),
        "workspace",
        ("/api/v1/workspace",),
    ),
    # The assistants the workspace configured: part of "configure ticket settings".
    Call(
        "list-assistants",
        "GET",
        "/api/v1/assistants",
        None,
        (OK, OK, NO, NO),
        "assistant",
        ("/api/v1/assistants",),
        writes=False,
    ),
    # "manage members and roles": owner/admin (only an owner grants or removes owner). Seeing
    # who is in the workspace is not managing it: everyone may (the dashboard's assignee list).
    Call(
        "list-members",
        "GET",
        "/api/v1/members",
        None,
        (OK, OK, OK, OK),
        reread=("/api/v1/members",),
        writes=False,
    ),
    Call(
        "get-member",
        "GET",
        "/api/v1/members/{target}",
        None,
        (OK, OK, OK, OK),
        "member",
        ("/api/v1/members/{target}",),
        writes=False,
    ),
    Call(
        "add-member",
        "POST",
        "/api/v1/members",
        {"email": "{email}", "role": "member"},
        (CREATED, CREATED, NO, NO),
        reread=("/api/v1/members",),
    ),
    Call(
        "add-owner",
        "POST",
        "/api/v1/members",
        {"email": "{email}", "role": "owner"},
        (CREATED, NO, NO, NO),
        reread=("/api/v1/members",),
    ),
    Call(
        "patch-member-role-to-admin",
        "PATCH",
        "/api/v1/members/{target}",
        {"role": "admin"},
        (OK, OK, NO, NO),
        "member",
        ("/api/v1/members/{target}",),
    ),
    Call(
        "patch-member-role-to-owner",
        "PATCH",
        "/api/v1/members/{target}",
        {"role": "owner"},
        (OK, NO, NO, NO),
        "member",
        ("/api/v1/members/{target}",),
    ),
    Call(
        "delete-member",
        "DELETE",
        "/api/v1/members/{target}",
        None,
        (GONE, GONE, NO, NO),
        "member",
        ("/api/v1/members/{target}", "/api/v1/members"),
    ),
    Call(
        "delete-owner",
        "DELETE",
        "/api/v1/members/{target}",
        None,
        (GONE, NO, NO, NO),
        "owner",
        ("/api/v1/members/{target}", "/api/v1/members"),
    ),
]

CASES = [
    pytest.param(call, role, id=f"{call.method}-{call.id}-as-{role}")
    for call in MATRIX
    for role in ROLES
]


@dataclass
class Arena:
    """The crew's workspace, where each case makes its own targets."""

    system: System
    client: httpx.AsyncClient
    crew: Crew

    async def prepare(self, target: Target, caller: Person) -> Json:
        owner, client = self.crew.owner, self.client
        values: Json = {
            "me": caller.member_id,
            "member": self.crew.member.member_id,
            "other_member": self.crew.other_member.member_id,
            "assistant": self.crew.assistant,
            "conversation": self.crew.conversation,
            "new_conversation": f"conv-{uuid4().hex[:10]}",
            "email": f"new-{uuid4().hex[:10]}@acme.io",
        }
        if target in ("ticket", "linked_ticket"):
            values["ticket"] = (await create_ticket(client, owner))["id"]
        if target in ("ticket_of_member", "linked_ticket_of_member"):
            assigned = await create_ticket(client, owner, assignee_id=self.crew.member.member_id)
            values["ticket"] = assigned["id"]
        if target in ("linked_ticket", "linked_ticket_of_member"):
            values["linked"] = f"conv-{uuid4().hex[:10]}"
            await link(client, owner, values["ticket"], values["linked"])
        if target in ("member", "owner"):
            values["target"] = await add_member(client, owner, target)
        if target == "assistant":
            values["assistant"] = (await configure_assistant(client, owner)).id
        if target == "workspace":
            current = await client.get("/api/v1/workspace", headers=owner.auth)
            assert current.status_code == 200, current.text
            values["next_days"] = current.json()["auto_close_after_days"] % 365 + 1
        return values


def fill(template: Any, values: Json) -> Any:
    """The body with each "{name}" string replaced by its value (of whatever type)."""
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        return values[template[1:-1]]
    return template


@pytest.fixture
def arena(system: System, gateway: httpx.AsyncClient, crew: Crew) -> Arena:
    return Arena(system, gateway, crew)


@pytest.mark.parametrize(("call", "role"), CASES)
async def test_every_endpoint_answers_each_role_as_the_architecture_says(
    arena: Arena, call: Call, role: str
) -> None:
    caller = arena.crew.by_role(role)
    values = await arena.prepare(call.target, caller)
    reread = [path.format(**values) for path in call.reread]
    before = await observe(arena.system, arena.client, arena.crew.owner, reread)

    answer = await arena.client.request(
        call.method,
        call.path.format(**values),
        json=fill(call.body, values) if call.body is not None else None,
        headers=caller.auth,
    )

    expected = call.expected(role)
    after = await observe(arena.system, arena.client, arena.crew.owner, reread)
    if expected == NO:
        assert_problem(answer, NO, "forbidden")
        assert after == before, "a refused call changed something"
        return
    assert answer.status_code == expected, f"{answer.status_code}: {answer.text}"
    if expected == GONE:
        assert answer.content == b""
    if call.writes:
        assert after != before, "an allowed change changed nothing"
    else:
        assert after == before, "a read changed something"


# -- 2. one workspace never reaches another -----------------------------------------------------


@dataclass(frozen=True)
class Theirs:
    """What workspace B has: a ticket the widget made from a conversation of B's assistant
    (so the assistant has a request in its diagnostics too), and a member."""

    ticket: str
    conversation: str
    assistant: str
    member: str

    def paths(self) -> list[str]:
        """Everything of B, as B's owner reads it to see that nothing changed."""
        return [
            f"/api/v1/tickets/{self.ticket}",
            f"/api/v1/tickets/{self.ticket}/activity",
            f"/api/v1/conversations/{self.conversation}",
            f"/api/v1/members/{self.member}",
            "/api/v1/members",
            f"/api/v1/assistants/{self.assistant}/ticket-settings",
            f"/api/v1/assistants/{self.assistant}/ticket-requests",
        ]


async def their_things(system: System, client: httpx.AsyncClient, rival: Person) -> Theirs:
    assistant = await configure_assistant(client, rival)
    conversation, ticket_id = await widget_ticket(system, assistant)
    await settle_ticket(client, rival, ticket_id, conversation)
    member = await add_member(client, rival, "member")
    return Theirs(ticket_id, conversation, assistant.id, member)


ANOTHER_WORKSPACES = [
    pytest.param("GET", "/api/v1/tickets/{ticket}", None, id="get-ticket"),
    pytest.param("PATCH", "/api/v1/tickets/{ticket}", {"subject": "Hijacked"}, id="patch-ticket"),
    pytest.param("DELETE", "/api/v1/tickets/{ticket}", None, id="delete-ticket"),
    pytest.param("POST", "/api/v1/tickets/{ticket}/notes", {"body": "Hijacked"}, id="add-note"),
    pytest.param(
        "DELETE",
        "/api/v1/tickets/{ticket}/conversations/{conversation}",
        None,
        id="unlink-conversation",
    ),
    pytest.param("GET", "/api/v1/tickets/{ticket}/activity", None, id="ticket-activity"),
    pytest.param("GET", "/api/v1/conversations/{conversation}", None, id="conversation"),
    pytest.param("GET", "/api/v1/members/{member}", None, id="get-member"),
    pytest.param("PATCH", "/api/v1/members/{member}", {"role": "admin"}, id="patch-member"),
    pytest.param("DELETE", "/api/v1/members/{member}", None, id="delete-member"),
    pytest.param("GET", SETTINGS, None, id="get-ticket-settings"),
    pytest.param(
        "PUT",
        SETTINGS,
        {"ticket_creation_enabled": False, "require_contact_info": True},
        id="put-ticket-settings",
    ),
    pytest.param("GET", REQUESTS, None, id="get-ticket-requests"),
    pytest.param(
        "GET",
        "/api/v1/assistants/{assistant}/ticket-request-refusals",
        None,
        id="get-ticket-request-refusals",
    ),
    pytest.param("POST", "/api/v1/assistants/{assistant}/widget-key", None, id="new-widget-key"),
    pytest.param(
        "POST", "/api/v1/assistants/{assistant}/identity-secret", None, id="new-identity-secret"
    ),
]
# An assistant id is one workspace's: another's writes to it are told it is taken (409), so
# that it can pick another id; its reads find nothing (404).
ASSISTANT_TAKEN_ON = ("/ticket-settings", "/widget-key", "/identity-secret")


async def test_the_assistants_list_names_the_workspaces_own_and_no_other(
    system: System, gateway: httpx.AsyncClient, crew: Crew, rival: Person
) -> None:
    theirs = await their_things(system, gateway, rival)
    mine = await configure_assistant(gateway, crew.owner, contact=True)

    listed = await gateway.get("/api/v1/assistants", headers=crew.owner.auth)

    assert listed.status_code == 200, listed.text
    ids = [assistant["assistant_id"] for assistant in listed.json()]
    assert mine.id in ids
    assert theirs.assistant not in ids
    assert ids == sorted(ids)
    assert next(a for a in listed.json() if a["assistant_id"] == mine.id) == {
        "assistant_id": mine.id,
        "ticket_creation_enabled": True,
        "require_contact_info": True,
        "identity_verification": False,
        "allowed_origins": [],
    }


@pytest.mark.parametrize(("method", "path", "json"), ANOTHER_WORKSPACES)
async def test_another_workspaces_things_are_not_found_by_id_and_stay_unchanged(
    system: System,
    gateway: httpx.AsyncClient,
    crew: Crew,
    rival: Person,
    method: str,
    path: str,
    json: Json | None,
) -> None:
    theirs = await their_things(system, gateway, rival)
    before = await observe(system, gateway, rival, theirs.paths())

    answer = await gateway.request(
        method,
        path.format(
            ticket=theirs.ticket,
            conversation=theirs.conversation,
            assistant=theirs.assistant,
            member=theirs.member,
        ),
        json=json,
        headers=crew.owner.auth,
    )

    if method != "GET" and path.endswith(ASSISTANT_TAKEN_ON):
        assert_problem(answer, 409, "assistant_taken")
    else:
        assert_problem(answer, 404, "not_found")
    assert "My invoice is wrong" not in answer.text
    assert await observe(system, gateway, rival, theirs.paths()) == before


@pytest.mark.parametrize(
    ("status", "shown", "hidden"),
    [
        pytest.param(None, ["new"], {"closed": 1}, id="default-filter"),
        pytest.param(["spam"], [], {"new": 1, "closed": 1}, id="status-spam"),
        pytest.param(ALL_STATUSES, ["new", "closed"], {}, id="every-status"),
    ],
)
async def test_another_workspaces_tickets_never_show_in_a_list_or_search(
    gateway: httpx.AsyncClient,
    crew: Crew,
    rival: Person,
    status: list[str] | None,
    shown: list[str],
    hidden: dict[str, int],
) -> None:
    word = f"zeta{uuid4().hex[:8]}"
    ours = {
        "new": (await create_ticket(gateway, crew.owner, f"Printer {word} jams"))["id"],
        "closed": (await create_ticket(gateway, crew.owner, f"Printer {word} closed"))["id"],
    }
    await patch_ticket(gateway, crew.owner, ours["closed"], {"status": "closed"})
    # B has matches in every status A's filters show or hide, spam included.
    theirs = []
    for their_status in ALL_STATUSES:
        ticket = await create_ticket(gateway, rival, f"Printer {word} {their_status} (B)")
        if their_status != "new":
            await patch_ticket(gateway, rival, ticket["id"], {"status": their_status})
        theirs.append(ticket["id"])
    params: dict[str, Any] = {"q": word, **({"status": status} if status else {})}

    for reader in (crew.owner, crew.guest):
        answer = await gateway.get("/api/v1/tickets", params=params, headers=reader.auth)

        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert sorted(item["id"] for item in page["items"]) == sorted(ours[s] for s in shown)
        assert page["hidden_matches"] == hidden
        assert f"{word} new (B)" not in answer.text
        # Without a search either: B's newest tickets are not among A's.
        everything = await gateway.get(
            "/api/v1/tickets", params={"status": ALL_STATUSES, "limit": 200}, headers=reader.auth
        )
        assert everything.status_code == 200, everything.text
        assert not {item["id"] for item in everything.json()["items"]} & set(theirs)


@pytest.mark.parametrize("role", ROLES)
async def test_a_member_lookup_says_what_the_role_may_do_on_any_ticket(
    system: System, crew: Crew, role: str
) -> None:
    """The capabilities other services decide with are ticket-core's matrix, as it answers."""
    person = crew.by_role(role)
    async with httpx.AsyncClient(base_url=system.gateway, timeout=15.0) as client:
        answer = await client.get(f"/api/v1/members/{person.member_id}", headers=crew.owner.auth)
    assert answer.status_code == 200, answer.text
    capabilities = set(answer.json()["capabilities"])
    managers = {"configure_settings", "read_deleted_history", "manage_members", "delete_tickets"}
    assert managers <= capabilities if role in ("owner", "admin") else not managers & capabilities
    assert "view_tickets" in capabilities
    assert ("create_tickets" in capabilities) == (role != "guest")
    assert "edit_tickets" not in capabilities or role in ("owner", "admin")
