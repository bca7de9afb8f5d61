"""intake's rules: every reason a widget request can be refused, and the ticket text it asks
for. Pure functions, no I/O."""

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.intake.domain.requests import (
    AssistantSettings,
    NotAllowed,
    RateLimits,
    RecentRequests,
    Refused,
    check_conversation_growth,
    check_request,
    ensure_manages_settings,
    settings_changes,
    ticket_text,
)
from services.ticket_core.domain.permissions import capabilities_of
from shared.contracts.api import Role
from shared.contracts.widget import RejectionReason, WidgetTicketRequest

LIMITS = RateLimits(window_seconds=60, per_assistant=5, per_conversation=2)
QUIET = RecentRequests(for_assistant=0, for_conversation=0)
SENT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC).isoformat()


KEY = "wk_test-key"


def settings(enabled: bool = True, contact: bool = False) -> AssistantSettings:
    return AssistantSettings("asst-1", uuid4(), enabled, contact, widget_key=KEY)


def request(**overrides: Any) -> WidgetTicketRequest:
    body: dict[str, Any] = {
        "request_id": "req-1",
        "assistant_id": "asst-1",
        "conversation": {
            "id": "conv-1",
            "messages": [
                {"role": "visitor", "text": "My order never arrived", "sent_at": SENT},
                {"role": "assistant", "text": "Sorry! Let me get a human.", "sent_at": SENT},
            ],
        },
        "contact": {"name": "Ada", "email": "ada@example.com"},
    }
    body.update(overrides)
    return WidgetTicketRequest.model_validate(body)


def refusal(
    req: WidgetTicketRequest,
    conf: AssistantSettings | None,
    recent: RecentRequests = QUIET,
) -> RejectionReason:
    with pytest.raises(Refused) as refused:
        check_request(req, conf, recent, LIMITS, KEY)
    assert refused.value.detail  # always says what to do
    return refused.value.reason


def test_a_good_request_passes() -> None:
    check_request(request(), settings(contact=True), QUIET, LIMITS, KEY)


@pytest.mark.parametrize("key", [None, "", "wk_other", KEY + "x", KEY.upper()])
def test_a_request_without_the_assistants_key_is_refused(key: str | None) -> None:
    with pytest.raises(Refused) as refused:
        check_request(request(), settings(), QUIET, LIMITS, key)
    assert refused.value.reason is RejectionReason.INVALID_WIDGET_KEY
    assert "X-Widget-Key" in refused.value.detail or "widget key" in refused.value.detail


def test_an_unknown_assistant_is_refused() -> None:
    assert refusal(request(), None) is RejectionReason.UNKNOWN_ASSISTANT


def test_creation_turned_off_is_refused() -> None:
    assert refusal(request(), settings(enabled=False)) is RejectionReason.TICKET_CREATION_DISABLED


@pytest.mark.parametrize(
    "contact",
    [None, {}, {"name": "Ada"}, {"email": "ada@example.com"}, {"name": "  ", "email": "a@b.co"}],
)
def test_required_contact_info_needs_name_and_email(contact: dict[str, str] | None) -> None:
    req = request(contact=contact)
    assert refusal(req, settings(contact=True)) is RejectionReason.CONTACT_INFO_REQUIRED


@pytest.mark.parametrize("email", ["a@", "@b.c", "a b@c.d", "no-at-sign", "a@localhost"])
def test_an_invalid_email_is_refused_even_when_not_required(email: str) -> None:
    req = request(contact={"name": "Ada", "email": email})
    assert refusal(req, settings(contact=False)) is RejectionReason.INVALID_CONTACT


MESSAGE = {"role": "visitor", "text": "hi", "sent_at": SENT}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"contact": {"name": "x" * 101, "email": "a@example.com"}}, "contact.name"),
        ({"contact": {"name": "A", "email": "a" * 250 + "@b.co"}}, "contact.email"),
        ({"contact": {"name": "A", "email": "a@b.co", "signature": "f" * 129}}, "signature"),
        ({"request_id": "r" * 101}, "request_id"),
        ({"assistant_id": "a" * 101}, "assistant_id"),
        ({"conversation": {"id": "c" * 129, "messages": [MESSAGE]}}, "conversation.id"),
        (
            {"conversation": {"id": "c", "messages": [{**MESSAGE, "text": "x" * 4001}]}},
            "conversation.messages.0.text",
        ),
        ({"conversation": {"id": "c", "messages": [MESSAGE] * 201}}, "conversation.messages"),
    ],
)
def test_every_field_of_a_request_has_a_maximum(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as invalid:
        request(**overrides)
    located = {".".join(str(p) for p in e["loc"]) for e in invalid.value.errors()}
    assert any(field in where for where in located), located


@pytest.mark.parametrize("conversation_id", ["-abc", ".x", "_a", "has space", "é", "a/b", ""])
def test_a_conversation_id_ticket_core_would_refuse_is_refused_at_the_door(
    conversation_id: str,
) -> None:
    with pytest.raises(ValidationError):
        request(conversation={"id": conversation_id, "messages": [MESSAGE]})


@pytest.mark.parametrize("conversation_id", ["a", "conv-1", "A.b_c:d-e", "9" * 128])
def test_the_conversation_ids_ticket_core_takes_are_taken(conversation_id: str) -> None:
    from services.ticket_core.domain.tickets import clean_conversation_id

    request(conversation={"id": conversation_id, "messages": [MESSAGE]})
    assert clean_conversation_id(conversation_id) == conversation_id


def test_a_conversation_grows_to_its_limit_and_no_further() -> None:
    check_conversation_growth(950, 50)
    with pytest.raises(Refused) as refused:
        check_conversation_growth(951, 50)
    assert refused.value.reason is RejectionReason.CONVERSATION_TOO_LARGE


@pytest.mark.parametrize(
    "conversation",
    [
        {"id": "c", "messages": []},
        {"id": "c", "messages": [{"role": "assistant", "text": "hello", "sent_at": SENT}]},
    ],
)
def test_a_conversation_without_a_usable_id_or_visitor_words_is_refused(
    conversation: dict[str, Any],
) -> None:
    assert refusal(request(conversation=conversation), settings()) is (
        RejectionReason.INVALID_CONVERSATION
    )


@pytest.mark.parametrize(
    "recent", [RecentRequests(5, 0), RecentRequests(0, 2), RecentRequests(9, 9)]
)
def test_too_many_recent_requests_are_rate_limited(recent: RecentRequests) -> None:
    assert refusal(request(), settings(), recent) is RejectionReason.RATE_LIMITED


def test_unknown_message_roles_do_not_even_parse() -> None:
    with pytest.raises(ValueError, match="role"):
        request(
            conversation={"id": "c", "messages": [{"role": "bot", "text": "x", "sent_at": SENT}]}
        )


def test_the_ticket_text_keeps_markup_as_plain_text() -> None:
    req = request(
        conversation={
            "id": "conv-9",
            "messages": [
                {"role": "visitor", "text": "<script>alert(1)</script> help", "sent_at": SENT}
            ],
        },
        contact={"name": "<b>Eve</b>", "email": "eve@example.com"},
    )

    subject, description = ticket_text(req)

    assert subject == "<script>alert(1)</script> help"
    assert "Contact: <b>Eve</b> <eve@example.com>" in description
    assert "visitor: <script>alert(1)</script> help" in description


def test_a_long_first_message_is_cut_to_a_subject() -> None:
    long = "word " * 100
    req = request(
        conversation={"id": "c", "messages": [{"role": "visitor", "text": long, "sent_at": SENT}]}
    )
    subject, _ = ticket_text(req)
    assert len(subject) == 200
    assert subject.endswith("…")


@pytest.mark.parametrize("role", [Role.MEMBER, Role.GUEST])
def test_only_owners_and_admins_manage_assistant_settings(role: Role) -> None:
    with pytest.raises(NotAllowed):
        ensure_manages_settings(capabilities_of(role))
    ensure_manages_settings(capabilities_of(Role.ADMIN))
    ensure_manages_settings(capabilities_of(Role.OWNER))


def test_a_settings_save_reports_only_what_changed() -> None:
    before = settings(enabled=True, contact=False)
    assert settings_changes(before, True, False) == {}
    assert settings_changes(before, False, False) == {
        "ticket_creation_enabled": {"from": True, "to": False}
    }
    assert settings_changes(None, True, True) == {
        "ticket_creation_enabled": {"from": None, "to": True},
        "require_contact_info": {"from": None, "to": True},
        "allowed_origins": {"from": None, "to": []},
        "identity_verification": {"from": None, "to": False},
    }
    assert settings_changes(before, True, False, ("https://a.example",), None) == {
        "allowed_origins": {"from": [], "to": ["https://a.example"]}
    }
    assert settings_changes(before, True, False, None, True) == {
        "identity_verification": {"from": False, "to": True}
    }
