"""The ticket rules, table-driven: every cell of the permission matrix, every pair of statuses,
and what each change records. The expected tables are written out here from the architecture,
independently of the domain's own tables."""

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from services.ticket_core.domain.errors import Conflict, Forbidden, InvalidInput
from services.ticket_core.domain.members import Member
from services.ticket_core.domain.permissions import Action, ensure_allowed
from services.ticket_core.domain.statuses import transition_table_markdown
from services.ticket_core.domain.tickets import SystemProcess, Ticket
from shared.contracts.api import Role
from shared.contracts.tickets import TicketStatus

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WORKSPACE = uuid4()
ROLES = list(Role)

# From ../shared/ARCHITECTURE.md, "Roles and permissions": A = any ticket, S = only tickets
# assigned to them, - = never.            owner admin member guest
EXPECTED_MATRIX = {
    Action.VIEW: "AAAA",
    Action.CREATE: "AAA-",
    Action.EDIT: "AAS-",
    Action.ADD_NOTE: "AAS-",
    Action.LINK_CONVERSATION: "AAS-",
    Action.CHANGE_STATUS: "AAS-",
    Action.ASSIGN: "AA--",
    Action.CLOSE: "AA--",
    Action.MARK_SPAM: "AA--",
    Action.DELETE: "AA--",
    Action.CONFIGURE: "AA--",
    Action.MANAGE_MEMBERS: "AA--",
}


def member(role: Role, workspace: object = WORKSPACE) -> Member:
    return Member.join(workspace, f"{role}-{uuid4().hex[:6]}@example.com", role, NOW)  # type: ignore[arg-type]


def ticket(status: TicketStatus = TicketStatus.NEW, assignee: Member | None = None) -> Ticket:
    created = Ticket.create(
        workspace_id=WORKSPACE,
        number=1,
        subject="Checkout fails",
        description="",
        priority=None,
        assignee_id=assignee.id if assignee else None,
        actor=SystemProcess("test").as_actor,
        now=NOW,
    )
    created.status = status
    created.pending_events.clear()
    return created


CELLS = [
    (action, role, assigned) for action in Action for role in ROLES for assigned in (True, False)
]


@pytest.mark.parametrize(("action", "role", "assigned"), CELLS)
def test_every_cell_of_the_permission_matrix(action: Action, role: Role, assigned: bool) -> None:
    actor = member(role)
    target = ticket(assignee=actor if assigned else None)
    expected = EXPECTED_MATRIX[action][ROLES.index(role)]
    allowed = expected == "A" or (expected == "S" and assigned)

    if allowed:
        ensure_allowed(actor, action, target)
    else:
        with pytest.raises(Forbidden) as refused:
            ensure_allowed(actor, action, target)
        assert refused.value.detail  # says who may, and what to do


S = TicketStatus
# Every allowed move: "work" = whoever may change the ticket's status (owner, admin, the
# assigned member); "admin" = owner or admin only. Anything not listed is refused for all.
EXPECTED_MOVES: dict[tuple[TicketStatus, TicketStatus], str] = {
    **{
        (a, b): "work"
        for a in (S.NEW, S.OPEN, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER)
        for b in (S.OPEN, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.RESOLVED)
        if a != b
    },
    (S.RESOLVED, S.OPEN): "work",
    (S.RESOLVED, S.IN_PROGRESS): "work",
    **{
        (a, S.CLOSED): "admin"
        for a in (S.NEW, S.OPEN, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.RESOLVED)
    },
    (S.CLOSED, S.OPEN): "admin",
    **{(a, S.SPAM): "admin" for a in S if a is not S.SPAM},
    (S.SPAM, S.NEW): "admin",
}
PAIRS = [(a, b) for a in S for b in S if a != b]


@pytest.mark.parametrize(("source", "target"), PAIRS)
@pytest.mark.parametrize("role", ROLES)
def test_every_status_move_for_every_role(
    source: TicketStatus, target: TicketStatus, role: Role
) -> None:
    actor = member(role)
    subject = ticket(source, assignee=actor)  # assigned: the member's best case
    gate = EXPECTED_MOVES.get((source, target))
    allowed = (gate == "work" and role is not Role.GUEST) or (
        gate == "admin" and role in (Role.OWNER, Role.ADMIN)
    )

    if allowed:
        subject.change_status(actor, NOW, target.value)
        assert subject.status is target
        [event] = subject.pending_events
        assert event.data["changes"] == {"status": {"from": source.value, "to": target.value}}
    else:
        expected_error = Conflict if gate is None else Forbidden
        with pytest.raises(expected_error):
            subject.change_status(actor, NOW, target.value)
        assert subject.status is source
        assert subject.pending_events == []


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_the_system_only_auto_closes_and_reopens_on_a_customer_reply(
    source: TicketStatus, target: TicketStatus
) -> None:
    subject = ticket(source)
    system_moves = {(S.RESOLVED, S.CLOSED), (S.WAITING_ON_CUSTOMER, S.OPEN)}

    if (source, target) in system_moves:
        subject.change_status(SystemProcess("auto-close"), NOW, target.value)
        assert subject.pending_events[0].actor.type == "system"
    else:
        with pytest.raises((Conflict, Forbidden)):
            subject.change_status(SystemProcess("auto-close"), NOW, target.value)


def test_the_readme_shows_the_domains_transition_table() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert transition_table_markdown() in readme


def test_a_change_to_the_same_value_records_nothing_and_keeps_the_version() -> None:
    owner = member(Role.OWNER)
    subject = ticket()
    subject.edit(owner, NOW, subject="Checkout fails", description="")
    subject.change_priority(owner, NOW, "normal")
    subject.change_status(owner, NOW, "new")
    subject.assign(owner, NOW, None)
    assert subject.pending_events == []
    assert subject.version == 1


def test_one_write_with_several_changes_is_one_version_and_one_event_each() -> None:
    owner = member(Role.OWNER)
    subject = ticket()
    subject.edit(owner, NOW, subject="Payment fails", description="since 9:00")
    subject.change_priority(owner, NOW, "high")
    subject.assign(owner, NOW, owner)

    assert subject.version == 2
    assert [e.type for e in subject.pending_events] == [
        "ticket.edited",
        "ticket.priority_changed",
        "ticket.assigned",
    ]
    assert [e.sequence for e in subject.pending_events] == [2, 3, 4]
    assert subject.pending_events[0].data["changes"] == {
        "subject": {"from": "Checkout fails", "to": "Payment fails"},
        "description": {"from": "", "to": "since 9:00"},
    }


def test_reassigning_records_the_old_assignee_and_unassigning_its_own_type() -> None:
    owner, first, second = member(Role.OWNER), member(Role.MEMBER), member(Role.MEMBER)
    subject = ticket(assignee=first)
    subject.assign(owner, NOW, second)
    subject.assign(owner, NOW, None)
    assigned, unassigned = subject.pending_events
    assert assigned.type == "ticket.assigned"
    assert assigned.data["changes"]["assignee_id"] == {"from": str(first.id), "to": str(second.id)}
    assert unassigned.type == "ticket.unassigned"
    assert unassigned.data["changes"]["assignee_id"] == {"from": str(second.id), "to": None}


@pytest.mark.parametrize("role", [Role.GUEST])
def test_a_guest_cannot_be_assigned(role: Role) -> None:
    with pytest.raises(Forbidden):
        ticket().assign(member(Role.OWNER), NOW, member(role))


def test_an_assignee_of_another_workspace_is_refused() -> None:
    with pytest.raises(Conflict) as refused:
        ticket().assign(member(Role.OWNER), NOW, member(Role.MEMBER, workspace=uuid4()))
    assert refused.value.code == "unknown_assignee"


def test_a_conversation_linked_elsewhere_is_a_conflict() -> None:
    with pytest.raises(Conflict) as refused:
        ticket().link_conversation(member(Role.OWNER), NOW, "conv-1", linked_to=uuid4())
    assert refused.value.code == "conversation_already_linked"


@pytest.mark.parametrize("conversation_id", ["", "bad id!", "-starts-with-dash", "x" * 129, "a/b"])
def test_a_malformed_conversation_id_is_refused(conversation_id: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        ticket().link_conversation(member(Role.OWNER), NOW, conversation_id, linked_to=None)
    assert refused.value.code == "invalid_conversation_id"


@pytest.mark.parametrize(
    ("body", "code"), [("   ", "note_required"), ("x" * 10_001, "note_too_long")]
)
def test_a_note_must_have_text_within_the_limit(body: str, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        ticket().add_note(member(Role.OWNER), NOW, body)
    assert refused.value.code == code


def test_a_note_is_recorded_with_its_text() -> None:
    subject = ticket()
    subject.add_note(member(Role.ADMIN), NOW, "  Customer called back  ")
    [event] = subject.pending_events
    assert event.type == "ticket.note_added"
    assert event.data["note"]["body"] == "Customer called back"


# -- members --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor_role", "new_role", "allowed"),
    [
        (Role.OWNER, Role.OWNER, True),
        (Role.OWNER, Role.ADMIN, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.GUEST, True),
        (Role.MEMBER, Role.GUEST, False),
        (Role.GUEST, Role.GUEST, False),
    ],
)
def test_who_may_add_a_member_with_which_role(
    actor_role: Role, new_role: Role, allowed: bool
) -> None:
    actor = member(actor_role)
    if allowed:
        added = Member.join(WORKSPACE, "new@example.com", new_role, NOW, added_by=actor)
        assert added.pending_events[0].type == "member.added"
    else:
        with pytest.raises(Forbidden):
            Member.join(WORKSPACE, "new@example.com", new_role, NOW, added_by=actor)


def test_the_last_owner_can_be_neither_demoted_nor_removed() -> None:
    owner = member(Role.OWNER)
    with pytest.raises(Conflict) as demoting:
        owner.change_role(owner, NOW, Role.ADMIN, owners=1)
    with pytest.raises(Conflict) as removing:
        owner.remove(owner, NOW, owners=1)
    assert demoting.value.code == removing.value.code == "last_owner"
    assert owner.role is Role.OWNER


def test_an_owner_may_step_down_when_another_owner_remains() -> None:
    owner = member(Role.OWNER)
    owner.change_role(owner, NOW, Role.ADMIN, owners=2)
    assert owner.role is Role.ADMIN
    assert owner.pending_events[-1].data["changes"] == {"role": {"from": "owner", "to": "admin"}}


def test_an_admin_may_not_demote_or_remove_an_owner() -> None:
    owner, admin = member(Role.OWNER), member(Role.ADMIN)
    with pytest.raises(Forbidden):
        owner.change_role(admin, NOW, Role.MEMBER, owners=2)
    with pytest.raises(Forbidden):
        owner.remove(admin, NOW, owners=2)
