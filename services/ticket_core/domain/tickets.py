"""The ticket aggregate. Every change goes through a method here, which checks the rule and
records exactly one event for it; the store saves state and events in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from shared.contracts.envelope import Actor
from shared.contracts.tickets import (
    DESCRIPTION_MAX_LENGTH,
    SUBJECT_MAX_LENGTH,
    TicketEventType,
    TicketPriority,
    TicketStatus,
)

from .errors import InvalidInput


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """A change the aggregate made, in the order made; `sequence` is per ticket, gap-free."""

    type: str
    sequence: int
    actor: Actor
    time: datetime
    data: dict[str, Any]


@dataclass(slots=True)
class Ticket:
    id: UUID
    workspace_id: UUID
    number: int
    subject: str
    description: str
    status: TicketStatus
    priority: TicketPriority
    assignee_id: UUID | None
    conversation_ids: list[str]
    version: int
    last_sequence: int
    created_at: datetime
    updated_at: datetime
    pending_events: list[RecordedEvent] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        *,
        workspace_id: UUID,
        number: int,
        subject: str,
        description: str,
        priority: str | None,
        assignee_id: UUID | None,
        actor: Actor,
        now: datetime,
    ) -> Ticket:
        ticket = cls(
            id=uuid4(),
            workspace_id=workspace_id,
            number=number,
            subject=clean_subject(subject),
            description=clean_description(description),
            status=TicketStatus.NEW,
            priority=parse_priority(priority),
            assignee_id=assignee_id,
            conversation_ids=[],
            version=1,
            last_sequence=0,
            created_at=now,
            updated_at=now,
        )
        snapshot = ticket.snapshot()
        ticket._record(
            TicketEventType.CREATED,
            actor,
            now,
            {
                "ticket": snapshot,
                "changes": {
                    name: {"from": None, "to": snapshot[name]}
                    for name in ("subject", "description", "status", "priority", "assignee_id")
                },
            },
        )
        return ticket

    def snapshot(self) -> dict[str, Any]:
        """The ticket's state as plain JSON values (as published and as answered)."""
        return {
            "id": str(self.id),
            "number": self.number,
            "subject": self.subject,
            "description": self.description,
            "status": self.status.value,
            "priority": self.priority.value,
            "assignee_id": str(self.assignee_id) if self.assignee_id else None,
            "conversation_ids": list(self.conversation_ids),
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def _record(
        self, type_: TicketEventType, actor: Actor, now: datetime, data: dict[str, Any]
    ) -> None:
        self.last_sequence += 1
        self.pending_events.append(
            RecordedEvent(
                type=type_.value, sequence=self.last_sequence, actor=actor, time=now, data=data
            )
        )


def clean_subject(subject: str) -> str:
    clean = subject.strip()
    if not clean:
        raise InvalidInput(
            "subject_required",
            "The subject is empty; write what the ticket is about.",
            field="subject",
        )
    if len(clean) > SUBJECT_MAX_LENGTH:
        raise InvalidInput(
            "subject_too_long",
            f"The subject has {len(clean)} characters; the limit is {SUBJECT_MAX_LENGTH}. "
            "Move the details into the description.",
            field="subject",
        )
    return clean


def clean_description(description: str) -> str:
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise InvalidInput(
            "description_too_long",
            f"The description has {len(description)} characters; "
            f"the limit is {DESCRIPTION_MAX_LENGTH}.",
            field="description",
        )
    return description


def parse_priority(priority: str | None) -> TicketPriority:
    if priority is None:
        return TicketPriority.NORMAL
    try:
        return TicketPriority(priority)
    except ValueError:
        allowed = ", ".join(p.value for p in TicketPriority)
        raise InvalidInput(
            "unknown_priority",
            f"{priority!r} is not a priority; use one of: {allowed}.",
            field="priority",
        ) from None
