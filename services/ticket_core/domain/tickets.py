"""The ticket aggregate. Every change goes through a method here, which checks the rule and
the permission and records exactly one event for it; a change to the same value records
nothing. The store saves the state and the events in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID, uuid4

from shared.contracts.conversation_ids import (
    CONVERSATION_ID_RULE,
    is_conversation_id,
)
from shared.contracts.envelope import Actor
from shared.contracts.tickets import (
    DESCRIPTION_MAX_LENGTH,
    NOTE_MAX_LENGTH,
    SUBJECT_MAX_LENGTH,
    TicketEventType,
    TicketPriority,
    TicketStatus,
)

from . import permissions
from .errors import Conflict, Forbidden, InvalidInput, StaleVersion
from .events import EventSourced, change
from .members import Member
from .permissions import Action
from .statuses import SYSTEM_TRANSITIONS, TRANSITIONS


@dataclass(frozen=True, slots=True)
class SystemProcess:
    """A change nobody clicked: the auto-close scheduler, a customer's reply, the widget."""

    name: str
    actor_type: str = "system"

    @property
    def as_actor(self) -> Actor:
        return Actor(type="visitor" if self.actor_type == "visitor" else "system", id=self.name)


Requester = Member | SystemProcess
Value = TypeVar("Value", bound=StrEnum)

AUTO_CLOSE = SystemProcess("auto-close")
CUSTOMER_REPLY = SystemProcess("customer-reply")
# Statuses in which nobody works a ticket any more: its conversation may get a new one.
FINISHED = frozenset({TicketStatus.CLOSED, TicketStatus.SPAM})
# Fields a PATCH may change; only the assignee can be set to nothing.
PATCHABLE_NOT_NULL = ("subject", "description", "priority", "status")


def _id(value: UUID | None) -> str | None:
    return str(value) if value else None


# Most urgent first: the order of the list's `priority` sort.
URGENCY: dict[TicketPriority, int] = {p: rank for rank, p in enumerate(TicketPriority)}


@dataclass(slots=True)
class Ticket(EventSourced):
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
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

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
        conversation_id: str | None = None,
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
            conversation_ids=[clean_conversation_id(conversation_id)] if conversation_id else [],
            version=1,
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
                    name: change(None, snapshot[name])
                    for name in (
                        "subject",
                        "description",
                        "status",
                        "priority",
                        "assignee_id",
                        "conversation_ids",
                    )
                },
            },
        )
        return ticket

    @classmethod
    def open_by(
        cls,
        creator: Member,
        *,
        number: int,
        subject: str,
        description: str,
        priority: str | None,
        assignee_id: UUID | None,
        assignee: Member | None,
        now: datetime,
    ) -> Ticket:
        """A ticket a member creates from the dashboard. `assignee`: the member `assignee_id`
        names in the workspace, None if nobody does."""
        permissions.ensure_can_create_ticket(creator, assignee_id)
        if assignee_id is not None:
            permissions.ensure_can_work_tickets(_known_assignee(assignee_id, assignee))
        return cls.create(
            workspace_id=creator.workspace_id,
            number=number,
            subject=subject,
            description=description,
            priority=priority,
            assignee_id=assignee_id,
            actor=creator.as_actor,
            now=now,
        )

    # -- changes ----------------------------------------------------------------------------

    def ensure_version(self, expected: int | None) -> None:
        """An `If-Match` naming an older version is refused: the caller edits what it saw."""
        if expected is not None and expected != self.version:
            raise StaleVersion(
                f"You sent If-Match {expected} but the ticket is at version "
                f"{self.version}; reload it, re-apply your change and send the new ETag."
            )

    def patch(
        self, by: Member, now: datetime, changes: Mapping[str, Any], assignee: Member | None
    ) -> None:
        """A PATCH: only the fields present in `changes` change. `assignee`: the member
        `changes["assignee_id"]` names in the workspace, None if nobody does."""
        for name in PATCHABLE_NOT_NULL:
            if name in changes and changes[name] is None:
                raise InvalidInput(
                    f"{name}_required",
                    f"{name} cannot be null; leave it out to keep the current value.",
                    field=name,
                )
        self.edit(by, now, subject=changes.get("subject"), description=changes.get("description"))
        if "priority" in changes:
            self.change_priority(by, now, changes["priority"])
        if "assignee_id" in changes:
            assignee_id = changes["assignee_id"]
            self.assign(by, now, _known_assignee(assignee_id, assignee) if assignee_id else None)
        if "status" in changes:
            self.change_status(by, now, changes["status"])

    def visitor_replied(self, now: datetime) -> None:
        """The visitor wrote again in a linked conversation: a ticket waiting on them goes
        back to `open`."""
        if self.status is TicketStatus.WAITING_ON_CUSTOMER:
            self.change_status(CUSTOMER_REPLY, now, TicketStatus.OPEN.value)

    def close_if_resolved(self, now: datetime) -> None:
        """The auto-close scheduler's change: a ticket still resolved closes."""
        if self.status is TicketStatus.RESOLVED:
            self.change_status(AUTO_CLOSE, now, TicketStatus.CLOSED.value)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def edit(
        self, by: Requester, now: datetime, *, subject: str | None, description: str | None
    ) -> None:
        if subject is None and description is None:
            return
        # Authorized before the no-op check: a request the caller may not make is refused
        # even when it would change nothing.
        self._authorize(by, Action.EDIT)
        changes: dict[str, Any] = {}
        if subject is not None and (new_subject := clean_subject(subject)) != self.subject:
            changes["subject"] = change(self.subject, new_subject)
        if (
            description is not None
            and (new_description := clean_description(description)) != self.description
        ):
            changes["description"] = change(self.description, new_description)
        if not changes:
            return
        for name, field_change in changes.items():
            setattr(self, name, field_change["to"])
        self._record(TicketEventType.EDITED, by.as_actor, now, {"changes": changes})

    def change_priority(self, by: Requester, now: datetime, priority: str) -> None:
        new = parse_priority(priority)
        self._authorize(by, Action.EDIT)
        if new == self.priority:
            return
        old, self.priority = self.priority, new
        self._record_change(TicketEventType.PRIORITY_CHANGED, by, now, "priority", old, new)

    def change_status(self, by: Requester, now: datetime, status: str) -> None:
        new = parse_status(status)
        if new == self.status:
            self._authorize(by, Action.EDIT)
            return
        action = TRANSITIONS[self.status].get(new)
        if isinstance(by, SystemProcess):
            allowed = (self.status, new) in SYSTEM_TRANSITIONS
        else:
            allowed = action is not None
        if not allowed or action is None:
            raise Conflict(
                "transition_not_allowed",
                f"A ticket cannot go from {self.status} to {new}; from {self.status} it can go "
                f"to: {', '.join(TRANSITIONS[self.status]) or 'nothing'}.",
                field="status",
            )
        self._authorize(by, action)
        old, self.status = self.status, new
        self._record_change(TicketEventType.STATUS_CHANGED, by, now, "status", old, new)

    def assign(self, by: Requester, now: datetime, assignee: Member | None) -> None:
        new = assignee.id if assignee else None
        self._authorize(by, Action.ASSIGN)
        if new == self.assignee_id:
            return
        if assignee is not None:
            if assignee.workspace_id != self.workspace_id:
                raise Conflict(
                    "unknown_assignee",
                    "The assignee is not in this workspace.",
                    field="assignee_id",
                )
            permissions.ensure_can_work_tickets(assignee)
        old, self.assignee_id = self.assignee_id, new
        self._record_change(
            TicketEventType.ASSIGNED if new else TicketEventType.UNASSIGNED,
            by,
            now,
            "assignee_id",
            _id(old),
            _id(new),
        )

    def add_note(self, by: Requester, now: datetime, body: str) -> UUID:
        text = clean_note(body)
        self._authorize(by, Action.ADD_NOTE)
        note_id = uuid4()
        self._record(
            TicketEventType.NOTE_ADDED,
            by.as_actor,
            now,
            {"note": {"id": str(note_id), "body": text}, "changes": {"note": change(None, text)}},
        )
        return note_id

    def link_conversation(
        self, by: Requester, now: datetime, conversation_id: str, linked_to: UUID | None
    ) -> None:
        """`linked_to`: the ticket this workspace's conversation is linked to now, if any."""
        conversation = clean_conversation_id(conversation_id)
        self._authorize(by, Action.LINK_CONVERSATION)
        if conversation in self.conversation_ids:
            return
        if linked_to is not None and linked_to != self.id:
            raise Conflict(
                "conversation_already_linked",
                f"Conversation {conversation} is linked to ticket {linked_to}; "
                "unlink it there first.",
            )
        self._change_links(TicketEventType.CONVERSATION_LINKED, by, now, conversation)

    def unlink_conversation(self, by: Requester, now: datetime, conversation_id: str) -> None:
        conversation = clean_conversation_id(conversation_id)
        self._authorize(by, Action.LINK_CONVERSATION)
        if conversation not in self.conversation_ids:
            return
        self._change_links(TicketEventType.CONVERSATION_UNLINKED, by, now, conversation)

    def delete(self, by: Requester, now: datetime) -> None:
        self._authorize(by, Action.DELETE)
        self.deleted_at = now
        self._record(
            TicketEventType.DELETED,
            by.as_actor,
            now,
            {"ticket": self.snapshot(), "changes": {"deleted": change(False, True)}},
        )

    # -- reading ----------------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        return bool(self.pending_events)

    def snapshot(self) -> dict[str, Any]:
        """The ticket's state as plain JSON values (as published and as answered)."""
        return {
            "id": str(self.id),
            "number": self.number,
            "subject": self.subject,
            "description": self.description,
            "status": self.status.value,
            "priority": self.priority.value,
            "assignee_id": _id(self.assignee_id),
            "conversation_ids": list(self.conversation_ids),
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def _authorize(self, by: Requester, action: Action) -> None:
        if isinstance(by, Member):
            permissions.ensure_allowed(by, action, self)
        elif action not in (Action.CHANGE_STATUS, Action.CLOSE, Action.LINK_CONVERSATION):
            raise Forbidden(f"The system may not {action}.")

    def _change_links(
        self, type_: TicketEventType, by: Requester, now: datetime, conversation: str
    ) -> None:
        before = list(self.conversation_ids)
        if type_ is TicketEventType.CONVERSATION_LINKED:
            self.conversation_ids.append(conversation)
        else:
            self.conversation_ids.remove(conversation)
        self._record(
            type_,
            by.as_actor,
            now,
            {
                "conversation_id": conversation,
                "changes": {"conversation_ids": change(before, list(self.conversation_ids))},
            },
        )

    def _record_change(
        self, type_: TicketEventType, by: Requester, now: datetime, name: str, old: Any, new: Any
    ) -> None:
        """One field changed: its old and new value (an enum's as its plain value)."""
        plain = [value.value if isinstance(value, StrEnum) else value for value in (old, new)]
        self._record(type_, by.as_actor, now, {"changes": {name: change(*plain)}})

    def _record(
        self, type_: TicketEventType, actor: Actor, now: datetime, data: dict[str, Any]
    ) -> None:
        if type_ is not TicketEventType.CREATED:
            if not self.pending_events:
                self.version += 1  # one write, one new version, however many events
            self.updated_at = now
        self._append_event(type_.value, actor, now, data)


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


def clean_note(body: str) -> str:
    text = body.strip()
    if not text:
        raise InvalidInput("note_required", "The note is empty; write something.", field="body")
    if len(text) > NOTE_MAX_LENGTH:
        raise InvalidInput(
            "note_too_long",
            f"The note has {len(text)} characters; the limit is {NOTE_MAX_LENGTH}.",
            field="body",
        )
    return text


def clean_conversation_id(conversation_id: str) -> str:
    if not is_conversation_id(conversation_id):
        raise InvalidInput(
            "invalid_conversation_id",
            f"{conversation_id[:140]!r} is not a conversation id: {CONVERSATION_ID_RULE}.",
            field="conversation_id",
        )
    return conversation_id


def parse_priority(priority: str | None) -> TicketPriority:
    if priority is None:
        return TicketPriority.NORMAL
    return _parse(TicketPriority, priority, "priority")


def parse_status(status: str) -> TicketStatus:
    return _parse(TicketStatus, status, "status")


def _parse(values: type[Value], value: str, field: str) -> Value:
    try:
        return values(value)
    except ValueError:
        allowed = ", ".join(v.value for v in values)
        raise InvalidInput(
            f"unknown_{field}",
            f"{value!r} is not a {field}; use one of: {allowed}.",
            field=field,
        ) from None


def _known_assignee(assignee_id: UUID | str, assignee: Member | None) -> Member:
    if assignee is None:
        raise Conflict(
            "unknown_assignee",
            f"No member {assignee_id} in this workspace; pick one from GET /api/v1/members.",
            field="assignee_id",
        )
    return assignee
