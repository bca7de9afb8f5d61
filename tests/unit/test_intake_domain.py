"""intake's domain objects: a ticket request from its arrival to its outcome, and a
conversation that grows within its limits, each recording the messages its changes cause.
Pure: no database, no broker."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.intake.domain.admission import WidgetGuard
from services.intake.domain.assistants import Assistant
from services.intake.domain.conversations import Conversation
from services.intake.domain.requests import (
    AssistantSettings,
    RateLimits,
    RecentRequests,
    Refused,
)
from services.intake.domain.ticket_requests import TicketRequest, newest_requests
from services.intake.domain.widget_access import (
    BucketRule,
    RefusalSample,
    RefusalTally,
    TokenBuckets,
)
from shared.contracts.commands import CommandOutcome, CommandResult
from shared.contracts.widget import (
    MESSAGES_PER_CONVERSATION_MAX_COUNT,
    AssistantTicketSettings,
    ConversationMessage,
    RejectionReason,
    RequestStatus,
    WidgetTicketRequest,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KEY = "wk_test-key"
WORKSPACE = uuid4()
LIMITS = RateLimits(window_seconds=60, per_assistant=5, per_conversation=2)
QUIET = RecentRequests(for_assistant=0, for_conversation=0)


def settings(enabled: bool = True) -> AssistantSettings:
    return AssistantSettings("asst-1", WORKSPACE, enabled, False, widget_key=KEY)


def widget_request(assistant_id: str = "asst-1") -> WidgetTicketRequest:
    return WidgetTicketRequest.model_validate(
        {
            "request_id": "req-1",
            "assistant_id": assistant_id,
            "conversation": {
                "id": "conv-1",
                "messages": [
                    {"role": "visitor", "text": "Where is my parcel?", "sent_at": NOW.isoformat()}
                ],
            },
        }
    )


def accepted() -> TicketRequest:
    return TicketRequest.decide(widget_request(), settings(), QUIET, LIMITS, KEY, NOW)


def result(outcome: CommandOutcome, command_id: UUID, **data: Any) -> CommandResult:
    return CommandResult(
        command_id=command_id,
        command_type="ticket.create_from_conversation",
        outcome=outcome,
        **data,
    )


def message(text: str, minutes: int = 0, role: str = "visitor") -> ConversationMessage:
    return ConversationMessage.model_validate(
        {"role": role, "text": text, "sent_at": (NOW + timedelta(minutes=minutes)).isoformat()}
    )


def test_an_accepted_request_is_pending_and_asks_ticket_core_once() -> None:
    ticket_request = accepted()

    [(topic, command)] = ticket_request.pending_messages
    assert ticket_request.answer().status is RequestStatus.PENDING
    assert topic == "ticket.commands.v1"
    assert command.id == ticket_request.command_id
    assert (command.workspace_id, command.subject) == (WORKSPACE, "conv-1")
    assert command.data["subject"] == "Where is my parcel?"
    # The same request id always makes the same command id (ticket-core runs it once).
    assert accepted().command_id == ticket_request.command_id


def test_a_request_that_cannot_become_a_ticket_is_refused_and_nothing_is_made() -> None:
    with pytest.raises(Refused) as refused:
        TicketRequest.decide(widget_request(), settings(enabled=False), QUIET, LIMITS, KEY, NOW)
    assert refused.value.reason is RejectionReason.TICKET_CREATION_DISABLED


def test_ticket_cores_answer_decides_the_request_and_announces_it() -> None:
    ticket_request = accepted()
    ticket_request.pending_messages.clear()
    ticket_id = uuid4()

    ticket_request.take_result(
        result(
            CommandOutcome.CREATED, ticket_request.command_id, ticket_id=ticket_id, ticket_number=7
        ),
        NOW,
    )

    [(topic, outcome)] = ticket_request.pending_messages
    assert (ticket_request.status, ticket_request.ticket_number) == (RequestStatus.CREATED, 7)
    assert topic == "intake.request-outcomes.v1"
    assert (outcome.type, outcome.sequence, outcome.subject) == (
        "ticket_request.created",
        1,
        "req-1",
    )
    assert outcome.data["ticket_id"] == str(ticket_id)
    assert outcome.data["conversation_id"] == "conv-1"


def test_a_rejection_by_ticket_core_says_why() -> None:
    ticket_request = accepted()

    ticket_request.take_result(
        result(CommandOutcome.REJECTED, ticket_request.command_id, reason="x", detail="y"), NOW
    )

    answer = ticket_request.answer()
    assert (answer.status, answer.reason, answer.detail) == (
        RequestStatus.REJECTED,
        RejectionReason.TICKET_CORE_REJECTED,
        "x: y",
    )


def test_a_timeout_rejects_and_a_late_answer_corrects_it_with_the_next_sequence() -> None:
    ticket_request = accepted()
    ticket_request.pending_messages.clear()

    ticket_request.expire(120, NOW)
    timed_out = ticket_request.answer()
    ticket_request.take_result(
        result(
            CommandOutcome.ALREADY_LINKED,
            ticket_request.command_id,
            ticket_id=uuid4(),
            ticket_number=3,
        ),
        NOW,
    )

    assert (timed_out.status, timed_out.reason) == ("rejected", "ticket_core_timeout")
    assert "120s" in (timed_out.detail or "")
    corrected = ticket_request.answer()
    assert (corrected.status, corrected.ticket_number, corrected.reason) == ("created", 3, None)
    assert [(m.type, m.sequence) for _, m in ticket_request.pending_messages] == [
        ("ticket_request.rejected", 1),
        ("ticket_request.created", 2),
    ]


def test_only_a_pending_request_expires() -> None:
    ticket_request = accepted()
    ticket_request.take_result(
        result(
            CommandOutcome.CREATED, ticket_request.command_id, ticket_id=uuid4(), ticket_number=1
        ),
        NOW,
    )
    ticket_request.pending_messages.clear()

    ticket_request.expire(120, NOW)

    assert ticket_request.status is RequestStatus.CREATED
    assert ticket_request.pending_messages == []


def test_a_request_id_again_gets_the_same_answer_and_from_another_assistant_a_refusal() -> None:
    ticket_request = accepted()

    again = ticket_request.answer_again(widget_request())
    reused = ticket_request.answer_again(widget_request(assistant_id="asst-other"))

    assert again == ticket_request.answer()
    assert (reused.status, reused.reason) == ("rejected", RejectionReason.REQUEST_ID_REUSED)
    assert reused.detail


def test_the_admins_list_merges_stored_requests_and_sampled_refusals_newest_first() -> None:
    stored = accepted()
    older = RefusalSample(
        "asst-1", RejectionReason.RATE_LIMITED, "slow down", "req-0", "conv-1", NOW - timedelta(1)
    )
    newer = RefusalSample(
        "asst-1", RejectionReason.RATE_LIMITED, "slow down", None, None, NOW + timedelta(1)
    )

    records = newest_requests([stored], [newer, older], limit=2)

    assert [(r.request_id, r.status) for r in records] == [
        ("", RequestStatus.REJECTED),
        ("req-1", RequestStatus.PENDING),
    ]


def conversation(ticket_id: UUID | None = None) -> Conversation:
    return Conversation("asst-1", "conv-1", WORKSPACE, ticket_id=ticket_id)


def test_a_conversation_keeps_each_message_once() -> None:
    kept = conversation()

    first = kept.take([message("Hello"), message("Anyone?", 1)])
    again = kept.take([message("Hello"), message("Anyone?", 1), message("Hi!", 2, "assistant")])

    assert (first, again) == (2, 1)
    assert [m.text for m in kept.messages] == ["Hello", "Anyone?", "Hi!"]
    assert kept.unsaved_messages == kept.messages
    assert kept.pending_messages == []  # no ticket yet: nothing to announce


def test_new_visitor_words_on_a_conversation_with_a_ticket_are_announced() -> None:
    kept = conversation(ticket_id=uuid4())
    kept.last_sequence = 4

    kept.take([message("Still nothing", 5), message("Sorry", 6, "assistant")])
    kept.take([message("Sorry", 6, "assistant")])

    [(topic, replied)] = kept.pending_messages
    assert topic == "intake.conversations.v1"
    assert (replied.type, replied.sequence, replied.subject) == (
        "conversation.visitor_replied",
        5,
        "conv-1",
    )
    assert replied.data["sent_at"] == (NOW + timedelta(minutes=5)).isoformat()
    assert replied.actor.id == "asst-1/conv-1"


def test_later_messages_stay_within_the_conversations_limit() -> None:
    kept = conversation()
    kept.take([message(f"m{n}", n) for n in range(MESSAGES_PER_CONVERSATION_MAX_COUNT - 1)])

    with pytest.raises(Refused) as refused:
        kept.add_later([message("one", 5_000), message("two", 5_001)])
    added = kept.add_later([message("last", 5_000)])

    assert refused.value.reason is RejectionReason.CONVERSATION_TOO_LARGE
    assert added == 1
    assert len(kept.messages) == MESSAGES_PER_CONVERSATION_MAX_COUNT


def guard() -> WidgetGuard:
    return WidgetGuard(
        address_writes=TokenBuckets(BucketRule(1, 60.0)),
        address_reads=TokenBuckets(BucketRule(5, 60.0)),
        assistant_writes=TokenBuckets(BucketRule(5, 60.0)),
        tally=RefusalTally(10),
        clock=lambda: 0.0,
    )


def test_the_gate_admits_the_key_and_counts_what_it_refuses() -> None:
    gate = guard()
    call: dict[str, Any] = {"origin": None, "address": "192.0.2.1", "kind": "write", "now": NOW}

    admitted = gate.admit(settings(), widget_key=KEY, **call)
    with pytest.raises(Refused) as limited:
        gate.admit(settings(), widget_key=KEY, **call)
    with pytest.raises(Refused) as unknown:
        gate.admit(None, widget_key="wk_guessed", **call)

    assert admitted.assistant_id == "asst-1"
    assert limited.value.reason is RejectionReason.RATE_LIMITED
    assert limited.value.retry_after_seconds
    assert unknown.value.reason is RejectionReason.INVALID_WIDGET_KEY
    assert sorted((key[0], key[1]) for key in gate.tally.drain().counts) == [
        ("", "invalid_widget_key"),
        ("asst-1", "rate_limited"),
    ]


def test_an_assistants_first_save_gives_it_a_key_and_each_change_is_announced_once() -> None:
    member = uuid4()
    wanted = AssistantTicketSettings(ticket_creation_enabled=True, require_contact_info=False)

    assistant = Assistant.configure(None, WORKSPACE, "asst-1", wanted, None, member, NOW)
    key = assistant.settings.widget_key
    same = Assistant.configure(assistant, WORKSPACE, "asst-1", wanted, None, member, NOW)
    origins = ("https://shop.example",)
    Assistant.configure(assistant, WORKSPACE, "asst-1", wanted, origins, member, NOW)

    assert same is assistant
    assert key is not None
    assert key.startswith("wk_")
    assert assistant.settings.allowed_origins == origins
    assert [change.changes for change in assistant.unsaved_changes] == [
        {
            "ticket_creation_enabled": {"from": None, "to": True},
            "require_contact_info": {"from": None, "to": False},
            "allowed_origins": {"from": None, "to": []},
            "identity_verification": {"from": None, "to": False},
        },
        {"allowed_origins": {"from": [], "to": ["https://shop.example"]}},
    ]
    assert [(m.type, m.sequence, m.subject) for _, m in assistant.pending_messages] == [
        ("assistant.ticket_settings_changed", 1, "asst-1"),
        ("assistant.ticket_settings_changed", 2, "asst-1"),
    ]


def test_a_new_widget_key_keeps_the_replaced_one_to_refuse_it_and_never_shows_values() -> None:
    assistant = Assistant(settings(), last_sequence=3)

    key = assistant.replace_credential("widget_key", uuid4(), NOW)
    secret = assistant.replace_credential("identity_secret", uuid4(), NOW)

    assert (assistant.settings.widget_key, assistant.settings.previous_widget_key) == (key, KEY)
    assert assistant.settings.identity_secret == secret
    assert [change.changes for change in assistant.unsaved_changes] == [
        {"widget_key": {"from": "(replaced)", "to": "(new)"}},
        {"identity_secret": {"from": None, "to": "(new)"}},
    ]
    assert [m.sequence for _, m in assistant.pending_messages] == [4, 5]
    assert key not in str([m.model_dump() for _, m in assistant.pending_messages])
