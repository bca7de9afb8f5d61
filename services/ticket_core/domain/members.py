"""Workspaces and their members. The role decides what a member may do (permissions.py);
the rules here are about the roles themselves: only an owner grants or removes `owner`, and a
workspace always keeps at least one owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from shared.contracts.api import Capability, Role
from shared.contracts.envelope import Actor
from shared.contracts.formats import EMAIL
from shared.contracts.tickets import (
    AUTO_CLOSE_DAYS_MAX,
    AUTO_CLOSE_DAYS_MIN,
    MemberEventType,
    WorkspaceEventType,
)

from .errors import Conflict, Forbidden, InvalidInput
from .events import EventSourced, change
from .permissions import Action, capabilities_of, ensure_allowed

WORKSPACE_NAME_MAX_LENGTH = 120
EMAIL_MAX_LENGTH = 254
DEFAULT_AUTO_CLOSE_DAYS = 7
AUTO_CLOSE_DAYS_RANGE = range(AUTO_CLOSE_DAYS_MIN, AUTO_CLOSE_DAYS_MAX + 1)


@dataclass(slots=True)
class Workspace(EventSourced):
    id: UUID
    name: str
    created_at: datetime
    auto_close_after_days: int = DEFAULT_AUTO_CLOSE_DAYS

    @classmethod
    def found(cls, name: str, now: datetime) -> Workspace:
        clean = name.strip()
        if not clean or len(clean) > WORKSPACE_NAME_MAX_LENGTH:
            raise InvalidInput(
                "invalid_workspace_name",
                f"A workspace name is 1 to {WORKSPACE_NAME_MAX_LENGTH} characters.",
                field="name",
            )
        return cls(id=uuid4(), name=clean, created_at=now)

    def set_auto_close(self, by: Member, now: datetime, days: int) -> None:
        """Resolved tickets close themselves after `days` days without activity."""
        if days not in AUTO_CLOSE_DAYS_RANGE:
            raise InvalidInput(
                "invalid_auto_close_days",
                f"auto_close_after_days must be {AUTO_CLOSE_DAYS_MIN} to {AUTO_CLOSE_DAYS_MAX}.",
                field="auto_close_after_days",
            )
        ensure_allowed(by, Action.CONFIGURE)  # before the no-op check, like every write
        if days == self.auto_close_after_days:
            return
        old, self.auto_close_after_days = self.auto_close_after_days, days
        self._append_event(
            WorkspaceEventType.SETTINGS_CHANGED.value,
            by.as_actor,
            now,
            {"changes": {"auto_close_after_days": change(old, days)}},
        )


@dataclass(slots=True)
class Member(EventSourced):
    id: UUID
    workspace_id: UUID
    email: str
    role: Role
    created_at: datetime

    @classmethod
    def join(
        cls,
        workspace_id: UUID,
        email: str,
        role: Role | str,
        now: datetime,
        *,
        added_by: Member | None = None,
    ) -> Member:
        """A new member; `added_by` is None only for a workspace's founding owner."""
        new_role = parse_role(role)
        if added_by is not None:
            _ensure_manages_members(added_by)
            _ensure_may_grant(added_by, new_role)
        member = cls(
            id=uuid4(),
            workspace_id=workspace_id,
            email=clean_email(email),
            role=new_role,
            created_at=now,
        )
        actor = added_by.as_actor if added_by else member.as_actor
        member._append_event(
            MemberEventType.ADDED.value,
            actor,
            now,
            {"member": member.snapshot(), "changes": {"role": change(None, new_role.value)}},
        )
        return member

    def change_role(self, by: Member, now: datetime, role: Role | str, owners: int) -> None:
        """`owners`: how many owners the workspace has now."""
        new_role = parse_role(role)
        if new_role == self.role:
            return
        _ensure_manages_members(by)
        _ensure_may_grant(by, new_role)
        if self.role is Role.OWNER:
            _ensure_may_grant(by, self.role)
            _ensure_not_last_owner(owners, "demote")
        old, self.role = self.role, new_role
        self._append_event(
            MemberEventType.ROLE_CHANGED.value,
            by.as_actor,
            now,
            {"member": self.snapshot(), "changes": {"role": change(old.value, new_role.value)}},
        )

    def remove(self, by: Member, now: datetime, owners: int) -> None:
        _ensure_manages_members(by)
        if self.role is Role.OWNER:
            _ensure_may_grant(by, self.role)
            _ensure_not_last_owner(owners, "remove")
        self._append_event(
            MemberEventType.REMOVED.value,
            by.as_actor,
            now,
            {"member": self.snapshot(), "changes": {"role": change(self.role.value, None)}},
        )

    @property
    def as_actor(self) -> Actor:
        return Actor(type="member", id=str(self.id))

    @property
    def capabilities(self) -> list[Capability]:
        return capabilities_of(self.role)

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "workspace_id": str(self.workspace_id),
            "email": self.email,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
        }


def _ensure_manages_members(actor: Member) -> None:
    ensure_allowed(actor, Action.MANAGE_MEMBERS)


def _ensure_may_grant(actor: Member, role: Role) -> None:
    if role is Role.OWNER and actor.role is not Role.OWNER:
        raise Forbidden("Only an owner may grant or take away the owner role.")


def _ensure_not_last_owner(owners: int, verb: str) -> None:
    if owners <= 1:
        raise Conflict(
            "last_owner",
            f"This is the workspace's last owner; make someone else owner before you {verb} them.",
        )


def clean_email(email: str) -> str:
    clean = email.lower()
    if not EMAIL.matches(email) or len(clean) > EMAIL_MAX_LENGTH:
        raise InvalidInput(
            "invalid_email", f"{email[:300]!r} is not a valid email address.", field="email"
        )
    return clean


def parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            "unknown_role",
            f"{role!r} is not a role; use one of: {', '.join(r.value for r in Role)}.",
            field="role",
        ) from None
