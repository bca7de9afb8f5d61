"""The widget's API and messages (intake): a visitor's conversation becomes a ticket request.

The same `WidgetTicketRequest` body arrives over HTTP (`POST /widget/v1/ticket-requests`) or
on `widget.ticket-requests.v1`. Every refusal carries a stable `reason` the widget can show
and an admin can look up later.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from .conversation_ids import (
    CONVERSATION_ID_PATTERN,
    CONVERSATION_ID_RULE,
    BoundedConversationId,
)
from .formats import ORIGIN

# The widget's text limits, for every service (intake checks them, the gateway documents them).
MESSAGE_TEXT_MAX_LENGTH = 4_000
MESSAGES_MAX_COUNT = 200  # in one ticket request: the conversation's last messages
MESSAGES_PER_CALL_MAX_COUNT = 50  # in one call of the messages path
MESSAGES_PER_CONVERSATION_MAX_COUNT = 1_000  # stored for one conversation, all calls together
CONTACT_NAME_MAX_LENGTH = 100
CONTACT_EMAIL_MAX_LENGTH = 254  # RFC 5321's path limit
CONTACT_SIGNATURE_MAX_LENGTH = 128  # a hex HMAC-SHA256 is 64
REQUEST_ID_MAX_LENGTH = 100
ASSISTANT_ID_MAX_LENGTH = 100
WIDGET_KEY_HEADER = "X-Widget-Key"
WIDGET_KEY_MAX_LENGTH = 100
ALLOWED_ORIGINS_MAX_COUNT = 20
ORIGIN_MAX_LENGTH = 253 + len("https://") + len(":65535")


def _without_nul(text: str) -> str:
    # PostgreSQL can neither store nor search for U+0000: refused here, at the door.
    if "\x00" in text:
        raise ValueError("text cannot contain the NUL character (U+0000)")
    return text


Text = Annotated[str, AfterValidator(_without_nul)]
NO_NUL = r"^[^\x00]*$"  # the same rule for path parameters


class MessageRole(StrEnum):
    VISITOR = "visitor"
    ASSISTANT = "assistant"
    AGENT = "agent"


class ConversationMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: MessageRole
    text: Text = Field(
        max_length=MESSAGE_TEXT_MAX_LENGTH,
        description=f"Plain text, at most {MESSAGE_TEXT_MAX_LENGTH} characters.",
    )
    sent_at: datetime


class WidgetConversation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: BoundedConversationId = Field(
        pattern=CONVERSATION_ID_PATTERN,
        description=f"The conversation's id in the widget: {CONVERSATION_ID_RULE}.",
    )
    messages: list[ConversationMessage] = Field(
        default_factory=list,
        max_length=MESSAGES_MAX_COUNT,
        description=f"The conversation's last messages, at most {MESSAGES_MAX_COUNT}.",
    )


class Contact(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text | None = Field(default=None, max_length=CONTACT_NAME_MAX_LENGTH)
    email: Text | None = Field(default=None, max_length=CONTACT_EMAIL_MAX_LENGTH)
    signature: Text | None = Field(
        default=None,
        max_length=CONTACT_SIGNATURE_MAX_LENGTH,
        description="With the assistant's `identity_verification` on: lowercase hex "
        "HMAC-SHA256(identity_secret, email), made by the site's own server.",
    )


class WidgetTicketRequest(BaseModel):
    """Turn this conversation into a ticket. Send the same `request_id` when retrying."""

    model_config = ConfigDict(extra="ignore")

    request_id: Text = Field(
        min_length=1, max_length=REQUEST_ID_MAX_LENGTH, examples=["req_01HXYZ"]
    )
    assistant_id: Text = Field(
        min_length=1, max_length=ASSISTANT_ID_MAX_LENGTH, examples=["asst_support"]
    )
    conversation: WidgetConversation
    contact: Contact | None = None


class RequestStatus(StrEnum):
    PENDING = "pending"
    CREATED = "created"
    REJECTED = "rejected"


class RejectionReason(StrEnum):
    INVALID_REQUEST = "invalid_request"
    INVALID_WIDGET_KEY = "invalid_widget_key"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    CONTACT_NOT_VERIFIED = "contact_not_verified"
    UNKNOWN_ASSISTANT = "unknown_assistant"
    TICKET_CREATION_DISABLED = "ticket_creation_disabled"
    CONTACT_INFO_REQUIRED = "contact_info_required"
    INVALID_CONTACT = "invalid_contact"
    CONVERSATION_TOO_LARGE = "conversation_too_large"
    INVALID_CONVERSATION = "invalid_conversation"
    RATE_LIMITED = "rate_limited"
    REQUEST_ID_REUSED = "request_id_reused"
    TICKET_CORE_TIMEOUT = "ticket_core_timeout"
    TICKET_CORE_REJECTED = "ticket_core_rejected"


class WidgetAssistantSettings(BaseModel):
    """What the widget needs to know before a visitor asks for a person: whether it may ask at
    all, and whether to ask for a name and an email first. Nothing secret."""

    assistant_id: str
    ticket_creation_enabled: bool
    require_contact_info: bool
    identity_verification: bool = Field(
        description="The site's server must sign the visitor's email (`contact.signature`)."
    )


class WidgetRequestAnswer(BaseModel):
    request_id: str
    status: RequestStatus
    ticket_id: UUID | None = None
    ticket_number: int | None = None
    reason: RejectionReason | None = None
    detail: str | None = None


class TicketRequestRecord(WidgetRequestAnswer):
    """A request as the admin's diagnostics show it."""

    assistant_id: str
    conversation_id: str | None
    received_at: datetime
    decided_at: datetime | None


Origin = Annotated[
    str,
    ORIGIN,
    Field(min_length=1, max_length=ORIGIN_MAX_LENGTH, examples=["https://www.example.com"]),
]


class AssistantTicketSettings(BaseModel):
    # Strict booleans: `0` or `"yes"` is refused, not read as false or true.
    model_config = ConfigDict(extra="forbid")

    ticket_creation_enabled: StrictBool = Field(
        description="When off, widget requests are refused with `ticket_creation_disabled`."
    )
    require_contact_info: StrictBool = Field(
        description="When on, a request needs the visitor's name and a valid email."
    )
    allowed_origins: list[Origin] | None = Field(
        default=None,
        max_length=ALLOWED_ORIGINS_MAX_COUNT,
        description="The sites whose pages may call the widget API for this assistant, as "
        "`scheme://host[:port]` (at most "
        f"{ALLOWED_ORIGINS_MAX_COUNT}). A browser call from another `Origin` is refused with "
        "`origin_not_allowed`. Left out: unchanged; `[]` or null on the first save: any origin.",
    )
    identity_verification: StrictBool | None = Field(
        default=None,
        description="When on, `contact.signature` must be the HMAC-SHA256 of the visitor's "
        "email with the assistant's `identity_secret`, or the request is refused with "
        "`contact_not_verified`. Left out: unchanged (off on the first save).",
    )


class AssistantSettingsChange(BaseModel):
    changed_at: datetime
    changed_by: str
    changes: dict[str, Any]


class AssistantTicketSettingsOut(BaseModel):
    assistant_id: str
    ticket_creation_enabled: bool
    require_contact_info: bool
    allowed_origins: list[str] = Field(
        description="The origins allowed to call the widget API; empty: any origin."
    )
    identity_verification: bool
    widget_key: str = Field(
        description="Publishable (not a secret): the widget sends it as `X-Widget-Key`. "
        "`POST .../widget-key` replaces it; the old one is then refused."
    )
    identity_secret_set: bool = Field(
        description="Whether an `identity_secret` was made (it is shown only once)."
    )
    history: list[AssistantSettingsChange] = Field(description="Every change, newest first.")


# The assistants list is one page: a workspace configures a handful, never thousands.
ASSISTANTS_LISTED_MAX = 500


class AssistantSummary(BaseModel):
    """One line of the workspace's assistants list; `GET .../ticket-settings` has the rest."""

    assistant_id: str
    ticket_creation_enabled: bool
    require_contact_info: bool
    identity_verification: bool
    allowed_origins: list[str] = Field(
        description="The origins allowed to call the widget API; empty: any origin."
    )


class WidgetKeyOut(BaseModel):
    assistant_id: str
    widget_key: str = Field(description="The new key; the previous one is refused from now on.")


class IdentitySecretOut(BaseModel):
    assistant_id: str
    identity_secret: str = Field(
        description="Shown only this once: keep it on the site's server (never in the page). "
        "Making a new one replaces it at once."
    )


class RefusalCount(BaseModel):
    minute: datetime = Field(description="The minute (UTC) the refusals arrived in.")
    reason: RejectionReason
    count: int


class RefusalCounts(BaseModel):
    """How many widget calls of an assistant were refused, per reason and minute, newest first."""

    assistant_id: str
    items: list[RefusalCount]
    totals: dict[str, int] = Field(description="Per reason, over the minutes listed.")


class ConversationOut(BaseModel):
    id: str
    assistant_id: str
    messages: list[ConversationMessage]
    ticket_id: UUID | None


class WidgetEventType(StrEnum):
    """Types intake publishes: request outcomes, settings changes."""

    REQUEST_CREATED = "ticket_request.created"
    REQUEST_REJECTED = "ticket_request.rejected"
    SETTINGS_CHANGED = "assistant.ticket_settings_changed"


class ConversationMessages(BaseModel):
    """Later messages of a conversation the widget already sent."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: Text = Field(min_length=1, max_length=ASSISTANT_ID_MAX_LENGTH)
    messages: list[ConversationMessage] = Field(
        min_length=1,
        max_length=MESSAGES_PER_CALL_MAX_COUNT,
        description=f"1 to {MESSAGES_PER_CALL_MAX_COUNT} messages per call; a conversation "
        f"keeps at most {MESSAGES_PER_CONVERSATION_MAX_COUNT}.",
    )
