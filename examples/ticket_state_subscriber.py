"""A reference subscriber: follows `ticket.events.v1` with its own consumer group and keeps
every ticket's current state, using nothing but the published contract (docs/events.md) and
a plain Kafka client.

    python -m examples.ticket_state_subscriber --bootstrap localhost:9092 --group my-team

It shows the three things every subscriber does: drop redeliveries (by event `id` and by
`sequence`), hold an event that comes after a gap until the missing one arrives, and apply
`changes[field].to` in `sequence` order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

TOPIC = "ticket.events.v1"
# The ticket fields a `changes` entry may set (docs/events.md, "Event types").
TICKET_FIELDS = frozenset(
    {"subject", "description", "status", "priority", "assignee_id", "conversation_ids"}
)


@dataclass
class TicketStates:
    """Current state per ticket id, built from the events in order."""

    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_sequence: dict[str, int] = field(default_factory=dict)
    held: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)

    def apply(self, event: dict[str, Any]) -> None:
        if not isinstance(event, dict) or not {"id", "type", "subject", "sequence"} <= set(event):
            return  # not an envelope: nothing a subscriber can apply
        if event["id"] in self.seen_ids or not str(event["type"]).startswith("ticket."):
            return  # a redelivery, or a member/workspace event: not about a ticket's state
        self.seen_ids.add(event["id"])
        subject, sequence = event["subject"], event["sequence"]
        last = self.last_sequence.get(subject, 0)
        if sequence <= last:
            return  # already applied under this sequence
        if sequence > last + 1:
            self.held.setdefault(subject, {})[sequence] = event  # a gap: wait for it
            return
        next_event: dict[str, Any] | None = event
        while next_event is not None:
            self._apply_in_order(next_event)
            self.last_sequence[subject] = next_event["sequence"]
            next_event = self.held.get(subject, {}).pop(next_event["sequence"] + 1, None)

    def _apply_in_order(self, event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        state = self.tickets.setdefault(event["subject"], {"id": event["subject"]})
        if event["type"] == "ticket.created" and isinstance(data.get("ticket"), dict):
            state.update(data["ticket"])
        if event["type"] == "ticket.deleted":
            state["deleted"] = True
        # Tolerant reader: fields this example does not know are left alone.
        for name, change in (data.get("changes") or {}).items():
            if name in TICKET_FIELDS and isinstance(change, dict) and "to" in change:
                state[name] = change["to"]

    def gaps(self) -> dict[str, list[int]]:
        """Tickets waiting for an event: which sequences are held."""
        return {subject: sorted(held) for subject, held in self.held.items() if held}


async def follow(
    bootstrap: str,
    group: str,
    states: TicketStates,
    *,
    stop_when: Callable[[TicketStates], bool] = lambda _states: False,
    from_beginning: bool = True,
) -> TicketStates:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not stop_when(states):
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except ValueError:
                        continue  # not ours to judge: the producer's dead-letter topic has it
                    states.apply(event)
            if batches:
                await consumer.commit()  # after applying: a restart re-reads, never skips
    finally:
        await consumer.stop()
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--group", default="ticket-state-example")
    args = parser.parse_args()
    states = TicketStates()

    def report(current: TicketStates) -> bool:
        open_tickets = sum(1 for t in current.tickets.values() if not t.get("deleted"))
        print(f"{open_tickets} tickets, gaps: {current.gaps() or 'none'}", flush=True)
        return False

    asyncio.run(follow(args.bootstrap, args.group, states, stop_when=report))


if __name__ == "__main__":
    main()
