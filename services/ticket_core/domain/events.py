"""What every aggregate of ticket-core shares: it records its changes as events, numbered
per aggregate (the envelope's `sequence`), for the unit of work to put in the outbox."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contracts.envelope import Actor


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """A change the aggregate made, in the order made; `sequence` is gap-free per aggregate."""

    type: str
    sequence: int
    actor: Actor
    time: datetime
    data: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class EventSourced:
    last_sequence: int = 0
    pending_events: list[RecordedEvent] = field(default_factory=list)

    def _append_event(self, type_: str, actor: Actor, now: datetime, data: dict[str, Any]) -> None:
        self.last_sequence += 1
        self.pending_events.append(
            RecordedEvent(type=type_, sequence=self.last_sequence, actor=actor, time=now, data=data)
        )


def change(old: Any, new: Any) -> dict[str, Any]:
    """One field's change, as every event's `changes` carries it."""
    return {"from": old, "to": new}
