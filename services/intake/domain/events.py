"""What intake's domain objects share: each records the messages its changes cause (events,
or a command to ticket-core), in the order made, for the unit of work to write to the outbox
in the commit that stores the change."""

from dataclasses import dataclass, field

from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import Topic

SOURCE = "intake"


@dataclass(slots=True, kw_only=True)
class RecordsMessages:
    """`last_sequence`: the envelope `sequence` of the object's last event (gap-free)."""

    last_sequence: int = 0
    pending_messages: list[tuple[str, EventEnvelope]] = field(default_factory=list)

    def _next_sequence(self) -> int:
        self.last_sequence += 1
        return self.last_sequence

    def _send(self, topic: Topic, message: EventEnvelope) -> None:
        self.pending_messages.append((topic.name, message))
