"""The one envelope every Kafka message of the project carries (CloudEvents-like)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

ActorType = Literal["member", "visitor", "system"]


class Actor(BaseModel):
    """Who caused the event: a workspace member, a widget visitor or the system itself."""

    model_config = ConfigDict(frozen=True)

    type: ActorType = Field(description="Kind of actor.", examples=["member"])
    id: str | None = Field(
        default=None,
        description="Member id, visitor id, or the name of the system process.",
        examples=["6f1c0d0e-3b1a-4a57-9a53-2f0c8f1f6d11"],
    )

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(type="system", id=name)


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventEnvelope(BaseModel):
    """Envelope of every event. Readers must ignore fields they do not know (tolerant reader)."""

    model_config = ConfigDict(extra="allow")

    id: UUID = Field(default_factory=uuid4, description="Unique per event; de-duplicate by it.")
    type: str = Field(description="Event type.", examples=["ticket.created"])
    schema_version: int = Field(
        default=1, ge=1, description="Version of `data`'s schema for this type."
    )
    source: str = Field(description="Service that produced the event.", examples=["ticket-core"])
    time: datetime = Field(default_factory=utc_now, description="When the change happened (UTC).")
    workspace_id: UUID = Field(description="Workspace the subject belongs to.")
    subject: str = Field(description="The ticket id (also the Kafka message key).")
    sequence: int = Field(
        ge=1, description="Per-subject position: 1, 2, 3, ... with no gaps and no repeats."
    )
    correlation_id: str | None = Field(
        default=None, description="Id shared by everything caused by one original request."
    )
    causation_id: str | None = Field(
        default=None, description="Id of the request, command or event that caused this one."
    )
    actor: Actor
    data: dict[str, Any] = Field(
        default_factory=dict, description="Type-specific payload; changes carry `from` and `to`."
    )
