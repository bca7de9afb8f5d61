from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.ticket_core.domain.errors import Conflict, Forbidden, InvalidInput, StaleVersion
from services.ticket_core.domain.members import Member
from services.ticket_core.domain.permissions import ensure_can_create_ticket
from services.ticket_core.domain.tickets import Ticket
from shared.contracts.api import Role
from shared.contracts.envelope import Actor
from shared.contracts.tickets import TicketPriority, TicketStatus

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ACTOR = Actor(type="member", id="m-1")


def new_ticket(**overrides: object) -> Ticket:
    values: dict[str, object] = {
        "workspace_id": uuid4(),
        "number": 1,
        "subject": "Checkout fails",
        "description": "Every payment fails.",
        "priority": None,
        "assignee_id": None,
        "actor": ACTOR,
        "now": NOW,
    }
    values.update(overrides)
    return Ticket.create(**values)  # type: ignore[arg-type]


def test_a_new_ticket_is_new_normal_version_1_and_records_one_created_event() -> None:
    ticket = new_ticket()

    assert ticket.status is TicketStatus.NEW
    assert ticket.priority is TicketPriority.NORMAL
    assert ticket.version == 1
    [event] = ticket.pending_events
    assert event.type == "ticket.created"
    assert event.sequence == 1
    assert event.actor == ACTOR
    assert event.data["ticket"]["subject"] == "Checkout fails"
    assert event.data["changes"]["status"] == {"from": None, "to": "new"}
    assert event.data["changes"]["priority"] == {"from": None, "to": "normal"}


def test_the_subject_is_trimmed() -> None:
    assert new_ticket(subject="  Login broken \n").subject == "Login broken"


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"subject": ""}, "subject_required", "subject"),
        ({"subject": "   \t"}, "subject_required", "subject"),
        ({"subject": "x" * 201}, "subject_too_long", "subject"),
        ({"description": "x" * 20_001}, "description_too_long", "description"),
        ({"priority": "urgent"}, "unknown_priority", "priority"),
    ],
)
def test_invalid_values_are_refused_with_a_stable_code(
    overrides: dict[str, object], code: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        new_ticket(**overrides)

    assert refused.value.code == code
    assert refused.value.field == field
    assert refused.value.detail  # says what was wrong


def test_limits_are_inclusive() -> None:
    ticket = new_ticket(subject="x" * 200, description="y" * 20_000, priority="critical")
    assert len(ticket.subject) == 200
    assert ticket.priority is TicketPriority.CRITICAL


def member(role: Role) -> Member:
    return Member.join(uuid4(), f"{role}@example.com", role, NOW)


@pytest.mark.parametrize(
    ("role", "assignee", "allowed"),
    [
        (Role.OWNER, "none", True),
        (Role.OWNER, "self", True),
        (Role.OWNER, "other", True),
        (Role.ADMIN, "none", True),
        (Role.ADMIN, "self", True),
        (Role.ADMIN, "other", True),
        (Role.MEMBER, "none", True),
        (Role.MEMBER, "self", True),
        (Role.MEMBER, "other", False),
        (Role.GUEST, "none", False),
        (Role.GUEST, "self", False),
        (Role.GUEST, "other", False),
    ],
)
def test_who_may_create_a_ticket_and_for_whom(role: Role, assignee: str, allowed: bool) -> None:
    actor = member(role)
    assignee_id = {"none": None, "self": actor.id, "other": uuid4()}[assignee]

    if allowed:
        ensure_can_create_ticket(actor, assignee_id)
    else:
        with pytest.raises(Forbidden):
            ensure_can_create_ticket(actor, assignee_id)


@pytest.mark.parametrize(
    "email", ["a@", "@b.c", "a b@c.d", "plain", "a@b", "", " a@b.c", "a@b_c.d", "a\x08@b.c"]
)
def test_a_member_needs_a_valid_email(email: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Member.join(uuid4(), email, Role.MEMBER, NOW)
    assert refused.value.code == "invalid_email"


def test_emails_are_stored_lower_case() -> None:
    assert Member.join(uuid4(), "Boss@Acme.IO", Role.OWNER, NOW).email == "boss@acme.io"


def test_an_if_match_naming_an_older_version_is_refused() -> None:
    ticket = new_ticket()
    ticket.ensure_version(None)
    ticket.ensure_version(1)
    with pytest.raises(StaleVersion):
        ticket.ensure_version(0)


@pytest.mark.parametrize(
    ("status", "after"),
    [
        (TicketStatus.WAITING_ON_CUSTOMER, TicketStatus.OPEN),
        (TicketStatus.IN_PROGRESS, TicketStatus.IN_PROGRESS),
        (TicketStatus.CLOSED, TicketStatus.CLOSED),
    ],
)
def test_a_visitor_reply_reopens_only_a_ticket_waiting_on_them(
    status: TicketStatus, after: TicketStatus
) -> None:
    ticket = new_ticket()
    ticket.status = status
    ticket.pending_events.clear()

    ticket.visitor_replied(NOW)

    assert ticket.status is after
    assert ticket.changed == (status is not after)


def test_a_member_creating_a_ticket_for_an_unknown_assignee_is_told_so() -> None:
    owner = member(Role.OWNER)
    with pytest.raises(Conflict) as refused:
        Ticket.open_by(
            owner,
            number=1,
            subject="s",
            description="",
            priority=None,
            assignee_id=uuid4(),
            assignee=None,
            now=NOW,
        )
    assert refused.value.code == "unknown_assignee"
