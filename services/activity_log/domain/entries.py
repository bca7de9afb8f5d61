"""An activity entry: who did what to a ticket, when, and every field's old and new value."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.contracts.api import Capability
from shared.contracts.envelope import Actor, EventEnvelope


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    event_id: UUID
    workspace_id: UUID
    ticket_id: str
    sequence: int
    type: str
    schema_version: int
    actor: Actor
    time: datetime
    changes: dict[str, Any]
    data: dict[str, Any]

    @classmethod
    def from_event(cls, event: EventEnvelope) -> "ActivityEntry":
        # Tolerant reader: only `changes` is interpreted; the rest of `data` is kept as sent,
        # so an event type this version does not know yet still lands in the history.
        changes = event.data.get("changes")
        return cls(
            event_id=event.id,
            workspace_id=event.workspace_id,
            ticket_id=event.subject,
            sequence=event.sequence,
            type=event.type,
            schema_version=event.schema_version,
            actor=event.actor,
            time=event.time,
            changes=changes if isinstance(changes, dict) else {},
            data=event.data,
        )


def may_read_history(capabilities: Collection[Capability], deleted: bool) -> bool:
    """Everyone in the workspace reads a ticket's history (notes included); once the ticket
    is deleted, only a caller whom ticket-core lets read deleted history does."""
    return not deleted or Capability.READ_DELETED_HISTORY in capabilities
