"""intake's rules: whether a widget request can become a ticket, and why not.

Pure functions and small value objects; the handlers feed them what they loaded (the
assistant's settings, how many requests came recently) and store what they decide.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from shared.contracts.api import Capability
from shared.contracts.conversation_ids import CONVERSATION_ID_RULE, is_conversation_id
from shared.contracts.tickets import DESCRIPTION_MAX_LENGTH, SUBJECT_MAX_LENGTH
from shared.contracts.widget import (
    CONTACT_NAME_MAX_LENGTH,
    MESSAGE_TEXT_MAX_LENGTH,
    MESSAGES_MAX_COUNT,
    MESSAGES_PER_CONVERSATION_MAX_COUNT,
    MessageRole,
    RejectionReason,
    WidgetTicketRequest,
)

from .widget_access import Refused, check_contact_signature, check_widget_key

__all__ = ["Refused"]


class NotAllowed(Exception):
    """The dashboard caller's role may not do this."""


class InvalidSettings(Exception):
    """Ticket settings that cannot be saved; the message says what to change."""


class AssistantTaken(Exception):
    """Another workspace configured this assistant id: it is theirs."""

    def __init__(self, assistant_id: str) -> None:
        super().__init__(
            f"Assistant id {assistant_id!r} is configured by another workspace; choose "
            "another id for your assistant."
        )


@dataclass(frozen=True, slots=True)
class AssistantSettings:
    assistant_id: str
    workspace_id: object
    ticket_creation_enabled: bool
    require_contact_info: bool
    widget_key: str | None = None
    previous_widget_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    identity_verification: bool = False
    identity_secret: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    window_seconds: int
    per_assistant: int
    per_conversation: int


@dataclass(frozen=True, slots=True)
class RecentRequests:
    """How many requests arrived in the current window."""

    for_assistant: int
    for_conversation: int


@dataclass(slots=True)
class RateWindows:
    """The requests in the current window per assistant and per conversation, for requests
    decided one after another (a batch): each one accepted counts for those after it, as it
    would had they come one by one."""

    per_assistant: dict[str, int]
    per_conversation: dict[tuple[str, str], int]

    def recent(self, assistant_id: str, conversation_id: str) -> RecentRequests:
        return RecentRequests(
            self.per_assistant.get(assistant_id, 0),
            self.per_conversation.get((assistant_id, conversation_id), 0),
        )

    def count(self, assistant_id: str, conversation_id: str) -> None:
        self.per_assistant[assistant_id] = self.per_assistant.get(assistant_id, 0) + 1
        key = (assistant_id, conversation_id)
        self.per_conversation[key] = self.per_conversation.get(key, 0) + 1


def check_caller(
    assistant_id: str, settings: AssistantSettings | None, widget_key: str | None
) -> AssistantSettings:
    """The assistant a call names, if the call carries its current widget key."""
    if settings is None:
        raise Refused(
            RejectionReason.UNKNOWN_ASSISTANT,
            f"No assistant {assistant_id!r} has ticket settings; check the widget's "
            "assistant id, or ask an admin to save the assistant's ticket settings.",
        )
    check_widget_key(widget_key, settings.widget_key, settings.previous_widget_key, assistant_id)
    return settings


def check_request(
    request: WidgetTicketRequest,
    settings: AssistantSettings | None,
    recent: RecentRequests,
    limits: RateLimits,
    widget_key: str | None = None,
) -> AssistantSettings:
    """Raise `Refused` with the first reason this request cannot become a ticket; else the
    settings of the assistant that accepts it."""
    settings = check_caller(request.assistant_id, settings, widget_key)
    if settings.identity_verification:
        contact = request.contact
        check_contact_signature(
            settings.identity_secret,
            contact.email if contact else None,
            contact.signature if contact else None,
        )
    if not settings.ticket_creation_enabled:
        raise Refused(
            RejectionReason.TICKET_CREATION_DISABLED,
            "Ticket creation is turned off for this assistant; an admin can turn it on "
            "in the assistant's ticket settings.",
        )
    _check_conversation(request)
    _check_contact(request, settings.require_contact_info)
    if recent.for_assistant >= limits.per_assistant or (
        recent.for_conversation >= limits.per_conversation
    ):
        raise Refused(
            RejectionReason.RATE_LIMITED,
            f"Too many ticket requests in the last {limits.window_seconds} seconds; "
            "try again in a minute.",
        )
    return settings


def _check_conversation(request: WidgetTicketRequest) -> None:
    # The model already holds these limits; checked again here so that the rule stands
    # whichever way a request was built.
    conversation = request.conversation
    if not is_conversation_id(conversation.id):
        raise Refused(
            RejectionReason.INVALID_CONVERSATION,
            f"conversation.id must be {CONVERSATION_ID_RULE}.",
        )
    if len(conversation.messages) > MESSAGES_MAX_COUNT:
        raise Refused(
            RejectionReason.CONVERSATION_TOO_LARGE,
            f"The conversation has {len(conversation.messages)} messages; "
            f"send at most the last {MESSAGES_MAX_COUNT}.",
        )
    for position, message in enumerate(conversation.messages):
        if len(message.text) > MESSAGE_TEXT_MAX_LENGTH:
            raise Refused(
                RejectionReason.CONVERSATION_TOO_LARGE,
                f"Message {position} has {len(message.text)} characters; "
                f"the limit is {MESSAGE_TEXT_MAX_LENGTH}.",
            )
    if not any(m.role is MessageRole.VISITOR and m.text.strip() for m in conversation.messages):
        raise Refused(
            RejectionReason.INVALID_CONVERSATION,
            "The conversation has no message from the visitor; there is nothing to follow up.",
        )


def _check_contact(request: WidgetTicketRequest, required: bool) -> None:
    contact = request.contact
    name = (contact.name or "").strip() if contact else ""
    email = (contact.email or "").strip() if contact else ""
    if required and (not name or not email):
        raise Refused(
            RejectionReason.CONTACT_INFO_REQUIRED,
            "This assistant needs the visitor's name and email before creating a ticket; "
            "show the contact form.",
        )
    if len(name) > CONTACT_NAME_MAX_LENGTH:
        raise Refused(
            RejectionReason.INVALID_CONTACT,
            f"The name has {len(name)} characters; the limit is {CONTACT_NAME_MAX_LENGTH}.",
        )
    if email:
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError as error:
            raise Refused(
                RejectionReason.INVALID_CONTACT, f"{email[:254]!r} is not a valid email: {error}"
            ) from error


def check_conversation_growth(stored: int, new: int) -> None:
    """A conversation keeps at most so many messages, however many calls bring them."""
    if stored + new > MESSAGES_PER_CONVERSATION_MAX_COUNT:
        raise Refused(
            RejectionReason.CONVERSATION_TOO_LARGE,
            f"The conversation has {stored} messages and this call adds {new}; a conversation "
            f"keeps at most {MESSAGES_PER_CONVERSATION_MAX_COUNT}. Start a new conversation.",
        )


def ticket_text(request: WidgetTicketRequest) -> tuple[str, str]:
    """The subject (the visitor's first words) and the description (the transcript) of the
    ticket a request asks for. Text stays text: nothing here is ever interpreted as markup."""
    visitor_lines = [
        m.text.strip() for m in request.conversation.messages if m.role is MessageRole.VISITOR
    ]
    first = next((line for line in visitor_lines if line), "")
    subject = " ".join(first.split())
    if len(subject) > SUBJECT_MAX_LENGTH:
        subject = subject[: SUBJECT_MAX_LENGTH - 1] + "…"
    contact = request.contact
    header = []
    if contact and (contact.name or contact.email):
        header.append(f"Contact: {(contact.name or '').strip()} <{(contact.email or '').strip()}>")
    header.append(f"Conversation {request.conversation.id} (assistant {request.assistant_id})")
    transcript = [
        f"[{m.sent_at.isoformat()}] {m.role}: {m.text}" for m in request.conversation.messages
    ]
    description = "\n".join([*header, "", *transcript])
    if len(description) > DESCRIPTION_MAX_LENGTH:
        description = description[: DESCRIPTION_MAX_LENGTH - 1] + "…"
    return subject, description


def ensure_manages_settings(capabilities: Collection[Capability]) -> None:
    """The caller's capabilities are ticket-core's answer (its permission matrix)."""
    if Capability.CONFIGURE_SETTINGS not in capabilities:
        raise NotAllowed(
            "You may not read or change ticket settings or diagnostics; ask an owner or admin."
        )


def settings_changes(
    before: AssistantSettings | None,
    enabled: bool,
    require_contact: bool,
    allowed_origins: tuple[str, ...] | None = None,
    identity_verification: bool | None = None,
) -> dict[str, dict[str, Any]]:
    """What a settings save changes, as `{field: {"from", "to"}}`; empty when nothing.
    `None` for the origins or the verification: unchanged."""
    old: dict[str, Any] = {
        "ticket_creation_enabled": before.ticket_creation_enabled if before else None,
        "require_contact_info": before.require_contact_info if before else None,
        "allowed_origins": list(before.allowed_origins) if before else None,
        "identity_verification": before.identity_verification if before else None,
    }
    new: dict[str, Any] = {
        "ticket_creation_enabled": enabled,
        "require_contact_info": require_contact,
        "allowed_origins": (
            list(allowed_origins) if allowed_origins is not None else old["allowed_origins"]
        ),
        "identity_verification": (
            identity_verification
            if identity_verification is not None
            else old["identity_verification"]
        ),
    }
    if before is None:
        new["allowed_origins"] = new["allowed_origins"] or []
        new["identity_verification"] = bool(new["identity_verification"])
    return {name: {"from": old[name], "to": new[name]} for name in new if old[name] != new[name]}
