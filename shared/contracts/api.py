"""Bodies of the dashboard API, shared by the gateway (which publishes them in its OpenAPI
document) and the internal services (which answer them), so neither re-declares the other's."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .conversation_ids import BoundedConversationId
from .envelope import Actor
from .formats import CONVERSATION_ID_FORMAT, EmailText, JsonInt, not_blank
from .tickets import (
    AUTO_CLOSE_DAYS_MAX,
    AUTO_CLOSE_DAYS_MIN,
    DESCRIPTION_MAX_LENGTH,
    NOTE_MAX_LENGTH,
    SUBJECT_MAX_LENGTH,
    TicketPriority,
    TicketStatus,
)


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    GUEST = "guest"


class Capability(StrEnum):
    """What a member may do on any ticket of the workspace, as ticket-core's permission matrix
    grants it to their role. Names only: which role has which is ticket-core's rule, and the
    services that own no members decide with the capabilities the caller's credential lists."""

    VIEW_TICKETS = "view_tickets"
    CREATE_TICKETS = "create_tickets"
    EDIT_TICKETS = "edit_tickets"
    ADD_NOTES = "add_notes"
    LINK_CONVERSATIONS = "link_conversations"
    CHANGE_STATUS = "change_status"
    ASSIGN_TICKETS = "assign_tickets"
    CLOSE_TICKETS = "close_tickets"
    MARK_SPAM = "mark_spam"
    DELETE_TICKETS = "delete_tickets"
    READ_DELETED_HISTORY = "read_deleted_history"
    CONFIGURE_SETTINGS = "configure_settings"
    MANAGE_MEMBERS = "manage_members"


# The `Idempotency-Key` of a create: the gateway's header, ticket-core's header and its table.
IDEMPOTENCY_KEY_MAX_LENGTH = 200

# A ticket's subject and description, and a note, as the API takes them (creating and changing).
# The bounds come before the format: a value is refused for its length first, as it always was.
SubjectText = Annotated[
    str,
    Field(min_length=1, max_length=SUBJECT_MAX_LENGTH),
    not_blank("subject_required", "a subject"),
]
DescriptionText = Annotated[str, Field(max_length=DESCRIPTION_MAX_LENGTH)]
NoteText = Annotated[
    str, Field(min_length=1, max_length=NOTE_MAX_LENGTH), not_blank("note_required", "a note")
]


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: SubjectText = Field(
        description="What the ticket is about; not blank.",
        examples=["Checkout fails with a 500"],
    )
    description: DescriptionText = Field(
        default="",
        examples=["Since 9:00 every card payment fails at the last step."],
    )
    priority: TicketPriority | None = Field(default=None, description="Defaults to `normal`.")
    assignee_id: UUID | None = Field(
        default=None,
        description="A member who can work tickets; a member may only pick themselves.",
    )


class TicketPatch(BaseModel):
    """Only the fields sent are changed; `assignee_id: null` unassigns."""

    model_config = ConfigDict(extra="forbid")

    # Optional but never null (ticket-core refuses a null there): pydantic keeps an unset
    # field's default without validating it, so a field left out stays None and is not sent
    # on (`exclude_unset`), while a null sent is refused and the schema says so.
    subject: SubjectText = None  # type: ignore[assignment]
    description: DescriptionText = None  # type: ignore[assignment]
    priority: TicketPriority = Field(default=None)  # type: ignore[assignment]
    status: TicketStatus = Field(  # type: ignore[assignment]
        default=None, description="Moves allowed by the transition table (README)."
    )
    assignee_id: UUID | None = None


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: NoteText = Field(
        description="Internal note: seen by the team, never by the visitor.",
    )


class Note(BaseModel):
    id: UUID
    ticket_id: UUID
    body: str
    author_id: UUID
    ticket_version: int


class ConversationLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The length first, then the form: a too long id is refused for its length, as it always was.
    conversation_id: Annotated[BoundedConversationId, CONVERSATION_ID_FORMAT] = Field(
        description="The chat conversation's id, as the widget knows it.",
        examples=["conv_8f2a1c"],
    )


class Ticket(BaseModel):
    id: UUID
    number: int = Field(description="Per-workspace number: 1, 2, 3, ...")
    subject: str
    description: str
    status: TicketStatus
    priority: TicketPriority
    assignee_id: UUID | None
    conversation_ids: list[str]
    version: int = Field(description="Increases with every change; sent as the ETag.")
    created_at: datetime
    updated_at: datetime


class TicketPage(BaseModel):
    items: list["Ticket"]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    hidden_matches: dict[TicketStatus, int] = Field(
        description="Tickets that match everything but the status filter, per hidden status."
    )
    hidden_matches_capped: list[TicketStatus] = Field(
        default_factory=list,
        description="Hidden statuses whose count stopped at 1,000 search matches: they hold "
        "at least that many.",
    )


class TicketSort(StrEnum):
    UPDATED = "updated"  # most recently changed first (the default)
    CREATED = "created"  # newest first
    PRIORITY = "priority"  # most urgent first, then most recently changed


class TicketCounts(BaseModel):
    counts: dict[TicketStatus, int] = Field(
        description="Tickets per status matching the filters (status aside); every status "
        "is present, zero included."
    )
    total: int = Field(description="The sum of `counts`.")
    capped: list[TicketStatus] = Field(
        default_factory=list,
        description="With `q`: statuses whose count stopped at 1,000 matches (at least that many).",
    )


class WorkspaceOut(BaseModel):
    id: UUID
    name: str
    auto_close_after_days: int = Field(
        description="A resolved ticket closes itself after this many days without activity."
    )


class WorkspacePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_close_after_days: JsonInt = Field(ge=AUTO_CLOSE_DAYS_MIN, le=AUTO_CLOSE_DAYS_MAX)


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailText = Field(max_length=254, examples=["agent@example.com"])
    role: Role = Role.MEMBER


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class MemberOut(BaseModel):
    id: UUID
    workspace_id: UUID
    email: str
    role: Role
    created_at: datetime
    capabilities: list[Capability] = Field(
        default_factory=list,
        description="What this member may do on any ticket, from their role. A member's "
        "rights on only the tickets assigned to them are decided per ticket, not listed.",
    )


class ActivityEntry(BaseModel):
    sequence: int = Field(description="The event's per-ticket sequence.")
    type: str = Field(examples=["ticket.created"])
    actor: Actor
    time: datetime
    changes: dict[str, Any] = Field(description='Each changed field as `{"from": old, "to": new}`.')
    event_id: UUID


class ActivityPage(BaseModel):
    items: list[ActivityEntry] = Field(description="Oldest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last one."
    )
