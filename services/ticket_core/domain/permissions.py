"""Who may do what: the architecture's roles-and-permissions matrix, as one table.

Every command asks `ensure_allowed`, whichever entrypoint it came from, so the matrix below is
the whole truth; the unit tests walk every cell of it.
"""

from enum import Enum, StrEnum
from typing import Protocol
from uuid import UUID

from shared.contracts.api import MANAGER_ROLES, Role

from .errors import Forbidden
from .members import Member


class Action(StrEnum):
    VIEW = "view tickets"
    CREATE = "create tickets"
    EDIT = "edit subject, description and priority"
    ADD_NOTE = "add notes"
    LINK_CONVERSATION = "link and unlink conversations"
    CHANGE_STATUS = "change the status"
    ASSIGN = "assign, reassign and unassign"
    CLOSE = "close or reopen closed tickets"
    MARK_SPAM = "mark spam and not spam"
    DELETE = "delete tickets"
    CONFIGURE = "configure ticket settings"
    MANAGE_MEMBERS = "manage members and roles"


class Scope(Enum):
    ANY = "any ticket"
    ASSIGNED = "only tickets assigned to them"
    NONE = "nothing"


_A, _S, _N = Scope.ANY, Scope.ASSIGNED, Scope.NONE

#                        owner/admin member guest
_SCOPES: dict[Action, tuple[Scope, Scope, Scope]] = {
    Action.VIEW: (_A, _A, _A),
    Action.CREATE: (_A, _A, _N),  # a member: unassigned or self only, see below
    Action.EDIT: (_A, _S, _N),
    Action.ADD_NOTE: (_A, _S, _N),
    Action.LINK_CONVERSATION: (_A, _S, _N),
    Action.CHANGE_STATUS: (_A, _S, _N),
    Action.ASSIGN: (_A, _N, _N),
    Action.CLOSE: (_A, _N, _N),
    Action.MARK_SPAM: (_A, _N, _N),
    Action.DELETE: (_A, _N, _N),
    Action.CONFIGURE: (_A, _N, _N),
    Action.MANAGE_MEMBERS: (_A, _N, _N),
}
# The owner/admin column applies to every role of `MANAGER_ROLES`, the contract's one
# definition of "owner or admin".
MATRIX: dict[Action, dict[Role, Scope]] = {
    action: {
        **dict.fromkeys(sorted(MANAGER_ROLES), managers),
        Role.MEMBER: member,
        Role.GUEST: guest,
    }
    for action, (managers, member, guest) in _SCOPES.items()
}

TICKET_WORKERS = MANAGER_ROLES | {Role.MEMBER}


class Assignable(Protocol):
    @property
    def assignee_id(self) -> UUID | None: ...


def ensure_allowed(actor: Member, action: Action, ticket: Assignable | None = None) -> None:
    scope = MATRIX[action][actor.role]
    if scope is Scope.ANY:
        return
    if scope is Scope.ASSIGNED and ticket is not None and ticket.assignee_id == actor.id:
        return
    if scope is Scope.ASSIGNED:
        raise Forbidden(
            f"A member may {action} only on tickets assigned to them; "
            "ask an admin to assign this ticket to you."
        )
    raise Forbidden(f"A {actor.role} may not {action}; ask an owner or admin.")


def ensure_can_create_ticket(actor: Member, assignee_id: UUID | None) -> None:
    ensure_allowed(actor, Action.CREATE)
    if actor.role is Role.MEMBER and assignee_id not in (None, actor.id):
        raise Forbidden(
            "A member may create a ticket only unassigned or assigned to themselves; "
            "ask an admin to assign it to someone else."
        )


def ensure_can_work_tickets(member: Member) -> None:
    """The assignee of a ticket must be someone who can work it."""
    if member.role not in TICKET_WORKERS:
        raise Forbidden(
            f"A {member.role} cannot be assigned tickets; pick an owner, admin or member.",
        )
