"""intake's rules: whether a widget request can become a ticket, and why not.

Pure functions and small value objects; the handlers feed them what they loaded (the
assistant's settings, how many requests came recently) and store what they decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from shared.contracts.api import Role, is_manager
from shared.contracts.widget import (
    CONTACT_NAME_MAX_LENGTH,
    MESSAGE_TEXT_MAX_LENGTH,
    MESSAGES_MAX_COUNT,
    MessageRole,
    RejectionReason,
    WidgetTicketRequest,
)

CONVERSATION_ID_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
)
CONVERSATION_ID_MAX_LENGTH = 128
SUBJECT_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 20_000


class Refused(Exception):
    """A request that cannot become a ticket, with the reason the widget shows."""

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class NotAllowed(Exception):
    """The dashboard caller's role may not do this."""


@dataclass(frozen=True, slots=True)
class AssistantSettings:
    assistant_id: str
    workspace_id: object
    ticket_creation_enabled: bool
    require_contact_info: bool


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


def check_request(
    request: WidgetTicketRequest,
    settings: AssistantSettings | None,
    recent: RecentRequests,
    limits: RateLimits,
) -> None:
    """Raise `Refused` with the first reason this request cannot become a ticket."""
    if settings is None:
        raise Refused(
            RejectionReason.UNKNOWN_ASSISTANT,
            f"No assistant {request.assistant_id!r} has ticket settings; check the widget's "
            "assistant id, or ask an admin to save the assistant's ticket settings.",
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


def _check_conversation(request: WidgetTicketRequest) -> None:
    conversation = request.conversation
    if len(conversation.id) > CONVERSATION_ID_MAX_LENGTH or not set(conversation.id) <= (
        CONVERSATION_ID_CHARACTERS
    ):
        raise Refused(
            RejectionReason.INVALID_CONVERSATION,
            "conversation.id must be 1 to 128 letters, digits, '.', '_', ':' or '-'.",
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


def ensure_manages_settings(role: Role) -> None:
    if not is_manager(role):
        raise NotAllowed(
            f"A {role} may not read or change ticket settings or diagnostics; ask an admin."
        )


def settings_changes(
    before: AssistantSettings | None, enabled: bool, require_contact: bool
) -> dict[str, dict[str, bool | None]]:
    """What a settings save changes, as `{field: {"from", "to"}}`; empty when nothing."""
    old_enabled = before.ticket_creation_enabled if before else None
    old_require = before.require_contact_info if before else None
    changes: dict[str, dict[str, bool | None]] = {}
    if old_enabled != enabled:
        changes["ticket_creation_enabled"] = {"from": old_enabled, "to": enabled}
    if old_require != require_contact:
        changes["require_contact_info"] = {"from": old_require, "to": require_contact}
    return changes
