"""Workspaces and their members. The role decides what a member may do (see permissions.py)."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from shared.contracts.api import Role
from shared.contracts.envelope import Actor

from .errors import InvalidInput

WORKSPACE_NAME_MAX_LENGTH = 120
EMAIL_MAX_LENGTH = 254


@dataclass(slots=True)
class Workspace:
    id: UUID
    name: str
    created_at: datetime

    @classmethod
    def found(cls, name: str, now: datetime) -> "Workspace":
        clean = name.strip()
        if not clean or len(clean) > WORKSPACE_NAME_MAX_LENGTH:
            raise InvalidInput(
                "invalid_workspace_name",
                f"A workspace name is 1 to {WORKSPACE_NAME_MAX_LENGTH} characters.",
                field="name",
            )
        return cls(id=uuid4(), name=clean, created_at=now)


@dataclass(slots=True)
class Member:
    id: UUID
    workspace_id: UUID
    email: str
    role: Role
    created_at: datetime

    @classmethod
    def join(cls, workspace_id: UUID, email: str, role: Role, now: datetime) -> "Member":
        clean = email.strip().lower()
        local, _, domain = clean.partition("@")
        if not local or "." not in domain or " " in clean or len(clean) > EMAIL_MAX_LENGTH:
            raise InvalidInput(
                "invalid_email", f"{email!r} is not a valid email address.", field="email"
            )
        return cls(id=uuid4(), workspace_id=workspace_id, email=clean, role=role, created_at=now)

    @property
    def as_actor(self) -> Actor:
        return Actor(type="member", id=str(self.id))
