"""The one envelope every Kafka message of the project carries (CloudEvents-like).

Every string has a maximum, and `data` (with any field a later version adds) a maximum
serialized size, so a reader knows what it may receive; the whole message is bounded again by
the system's maximum message size (`KAFKA_MAX_MESSAGE_BYTES`) when it is written to an outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Self
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import to_json

ActorType = Literal["member", "visitor", "system"]

TYPE_MAX_LENGTH = 100
SOURCE_MAX_LENGTH = 100
SUBJECT_MAX_LENGTH = 200
CORRELATION_ID_MAX_LENGTH = 200
# A visitor is `assistant/conversation` (100 + 1 + 128 characters).
ACTOR_ID_MAX_LENGTH = 256
# `data` and any fields the envelope does not know, serialized as JSON (UTF-8): half the
# default maximum message size, so an envelope always fits in a message with room to spare.
DATA_MAX_BYTES = 512 * 1024


class Actor(BaseModel):
    """Who caused the event: a workspace member, a widget visitor or the system itself."""

    model_config = ConfigDict(frozen=True)

    type: ActorType = Field(description="Kind of actor.", examples=["member"])
    id: str | None = Field(
        default=None,
        max_length=ACTOR_ID_MAX_LENGTH,
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
    type: str = Field(
        min_length=1,
        max_length=TYPE_MAX_LENGTH,
        description="Event type.",
        examples=["ticket.created"],
    )
    schema_version: int = Field(
        default=1, ge=1, le=1000, description="Version of `data`'s schema for this type."
    )
    source: str = Field(
        min_length=1,
        max_length=SOURCE_MAX_LENGTH,
        description="Service that produced the event.",
        examples=["ticket-core"],
    )
    time: datetime = Field(default_factory=utc_now, description="When the change happened (UTC).")
    workspace_id: UUID = Field(description="Workspace the subject belongs to.")
    subject: str = Field(
        min_length=1,
        max_length=SUBJECT_MAX_LENGTH,
        description="The ticket id (also the Kafka message key).",
    )
    sequence: int = Field(
        ge=1,
        le=2**63 - 1,
        description="Per-subject position: 1, 2, 3, ... with no gaps and no repeats.",
    )
    correlation_id: str | None = Field(
        default=None,
        max_length=CORRELATION_ID_MAX_LENGTH,
        description="Id shared by everything caused by one original request.",
    )
    causation_id: str | None = Field(
        default=None,
        max_length=CORRELATION_ID_MAX_LENGTH,
        description="Id of the request, command or event that caused this one.",
    )
    actor: Actor
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Type-specific payload; changes carry `from` and `to`. At most "
        f"{DATA_MAX_BYTES} bytes as JSON, together with any field this version does not know.",
    )

    @model_validator(mode="after")
    def _data_is_bounded(self) -> Self:
        size = len(to_json(self.data))
        if self.model_extra:
            size += len(to_json(self.model_extra))
        if size > DATA_MAX_BYTES:
            raise ValueError(
                f"data is {size} bytes as JSON, over the limit of {DATA_MAX_BYTES} bytes; "
                "send a reference to large content instead of the content"
            )
        return self


class EnvelopeHeaders(BaseModel):
    """The Kafka headers of every envelope the services publish, so that a subscriber can
    route on them without parsing the body. The AsyncAPI document shows this model as each
    message's `headers`, and its `correlation_id` as the message's correlation id."""

    model_config = ConfigDict(
        populate_by_name=True, json_schema_serialization_defaults_required=True
    )

    content_type: Literal["application/json"] = Field(
        default="application/json", alias="content-type", description="The body is JSON."
    )
    correlation_id: str = Field(
        max_length=CORRELATION_ID_MAX_LENGTH,
        description="The envelope's `correlation_id` (the request or conversation that caused "
        "the message); the envelope's `id` when it has none.",
    )
    event_type: str = Field(
        alias="event-type", max_length=TYPE_MAX_LENGTH, description="The envelope's `type`."
    )
    event_id: str = Field(alias="event-id", description="The envelope's `id`.")
    workspace_id: str = Field(alias="workspace-id", description="The envelope's `workspace_id`.")

    @classmethod
    def of(cls, body: dict[str, Any]) -> EnvelopeHeaders:
        """The headers of an envelope given as its JSON object (what an outbox row holds)."""
        event_id = str(body.get("id", ""))
        return cls(
            correlation_id=str(body.get("correlation_id") or event_id),
            event_type=str(body.get("type", "")),
            event_id=event_id,
            workspace_id=str(body.get("workspace_id", "")),
        )

    def as_kafka(self) -> dict[str, str]:
        return self.model_dump(by_alias=True)
