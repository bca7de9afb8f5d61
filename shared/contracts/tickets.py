"""Ticket vocabulary and event payloads of `ticket.events.v1` (the public contract).

The names here are fixed by the architecture; the rules about them (who may move a ticket
where) live in ticket-core's domain, not here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

# Published limits: clients can check before sending; ticket-core enforces them.
SUBJECT_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 20_000
NOTE_MAX_LENGTH = 10_000
# A resolved ticket closes itself after this many days without activity (per workspace).
AUTO_CLOSE_DAYS_MIN = 1
AUTO_CLOSE_DAYS_MAX = 365


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"
    SPAM = "spam"


class TicketPriority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class TicketEventType(StrEnum):
    """One type per kind of change; each carries `changes` with the old and new values."""

    CREATED = "ticket.created"
    EDITED = "ticket.edited"
    STATUS_CHANGED = "ticket.status_changed"
    PRIORITY_CHANGED = "ticket.priority_changed"
    ASSIGNED = "ticket.assigned"
    UNASSIGNED = "ticket.unassigned"
    NOTE_ADDED = "ticket.note_added"
    CONVERSATION_LINKED = "ticket.conversation_linked"
    CONVERSATION_UNLINKED = "ticket.conversation_unlinked"
    DELETED = "ticket.deleted"


class WorkspaceEventType(StrEnum):
    """Workspace settings changes; the subject and key are the workspace id."""

    SETTINGS_CHANGED = "workspace.settings_changed"


class MemberEventType(StrEnum):
    """Membership changes, on the same topic with the member id as subject and key."""

    ADDED = "member.added"
    ROLE_CHANGED = "member.role_changed"
    REMOVED = "member.removed"


class TicketSnapshot(BaseModel):
    """A ticket's full state, as carried by `ticket.created`."""

    id: UUID
    number: int = Field(ge=1, description="Per-workspace ticket number: 1, 2, 3, ...")
    subject: str
    description: str
    status: TicketStatus
    priority: TicketPriority
    assignee_id: UUID | None
    conversation_ids: list[str] = Field(default_factory=list)
    version: int
    created_at: datetime
    updated_at: datetime


class FieldChange(BaseModel):
    """One field's old and new value, serialised as `{"from": ..., "to": ...}`."""

    model_config = ConfigDict(populate_by_name=True)

    old: Any = Field(alias="from")
    new: Any = Field(alias="to")


class TicketCreatedData(BaseModel):
    ticket: TicketSnapshot
    changes: dict[str, FieldChange] = Field(
        description="Every initial field value, from null: history readers need no special case."
    )
