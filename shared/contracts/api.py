"""Bodies of the dashboard API, shared by the gateway (which publishes them in its OpenAPI
document) and the internal services (which answer them), so neither re-declares the other's."""

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .envelope import Actor
from .tickets import DESCRIPTION_MAX_LENGTH, SUBJECT_MAX_LENGTH, TicketPriority, TicketStatus


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    GUEST = "guest"


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(
        min_length=1,
        max_length=SUBJECT_MAX_LENGTH,
        description="What the ticket is about; not blank.",
        examples=["Checkout fails with a 500"],
    )
    description: str = Field(
        default="",
        max_length=DESCRIPTION_MAX_LENGTH,
        examples=["Since 9:00 every card payment fails at the last step."],
    )
    priority: TicketPriority | None = Field(default=None, description="Defaults to `normal`.")
    assignee_id: UUID | None = Field(
        default=None,
        description="A member who can work tickets; a member may only pick themselves.",
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


class MemberOut(BaseModel):
    id: UUID
    workspace_id: UUID
    email: str
    role: Role
    created_at: datetime


class ActivityEntry(BaseModel):
    sequence: int = Field(description="The event's per-ticket sequence.")
    type: str = Field(examples=["ticket.created"])
    actor: Actor
    time: datetime
    changes: dict[str, Any] = Field(description='Each changed field as `{"from": old, "to": new}`.')
    event_id: UUID


class ActivityPage(BaseModel):
    items: list[ActivityEntry] = Field(description="Oldest first.")
