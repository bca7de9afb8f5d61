"""The widget's API and messages (intake): a visitor's conversation becomes a ticket request.

The same `WidgetTicketRequest` body arrives over HTTP (`POST /widget/v1/ticket-requests`) or
on `widget.ticket-requests.v1`. Every refusal carries a stable `reason` the widget can show
and an admin can look up later.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MESSAGE_TEXT_MAX_LENGTH = 4_000
MESSAGES_MAX_COUNT = 200
CONTACT_NAME_MAX_LENGTH = 100


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
    text: Text = Field(description=f"Plain text, at most {MESSAGE_TEXT_MAX_LENGTH} characters.")
    sent_at: datetime


class WidgetConversation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Text = Field(min_length=1, description="The conversation's id in the widget.")
    messages: list[ConversationMessage] = Field(default_factory=list)


class Contact(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text | None = None
    email: Text | None = None


class WidgetTicketRequest(BaseModel):
    """Turn this conversation into a ticket. Send the same `request_id` when retrying."""

    model_config = ConfigDict(extra="ignore")

    request_id: Text = Field(min_length=1, max_length=100, examples=["req_01HXYZ"])
    assistant_id: Text = Field(min_length=1, max_length=100, examples=["asst_support"])
    conversation: WidgetConversation
    contact: Contact | None = None


class RequestStatus(StrEnum):
    PENDING = "pending"
    CREATED = "created"
    REJECTED = "rejected"


class RejectionReason(StrEnum):
    INVALID_REQUEST = "invalid_request"
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


class AssistantTicketSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_creation_enabled: bool = Field(
        description="When off, widget requests are refused with `ticket_creation_disabled`."
    )
    require_contact_info: bool = Field(
        description="When on, a request needs the visitor's name and a valid email."
    )


class AssistantSettingsChange(BaseModel):
    changed_at: datetime
    changed_by: str
    changes: dict[str, Any]


class AssistantTicketSettingsOut(AssistantTicketSettings):
    assistant_id: str
    history: list[AssistantSettingsChange] = Field(description="Every change, newest first.")


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

    assistant_id: Text = Field(min_length=1, max_length=100)
    messages: list[ConversationMessage] = Field(min_length=1)
