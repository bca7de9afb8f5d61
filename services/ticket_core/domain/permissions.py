"""Who may do what: the architecture's roles-and-permissions matrix, as one table.

Every command asks `ensure_allowed`, whichever entrypoint it came from, so the matrix below is
the whole truth; the unit tests walk every cell of it.
"""

from enum import Enum, StrEnum
from typing import Protocol
from uuid import UUID

from shared.contracts.api import Capability, Role

from .errors import Forbidden

# "Owner / admin" of the architecture's permission table: the roles that assign, close,
# delete, configure ticket settings and manage members.
MANAGER_ROLES: frozenset[Role] = frozenset({Role.OWNER, Role.ADMIN})


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
# The owner/admin column applies to every role of `MANAGER_ROLES`.
MATRIX: dict[Action, dict[Role, Scope]] = {
    action: {
        **dict.fromkeys(sorted(MANAGER_ROLES), managers),
        Role.MEMBER: member,
        Role.GUEST: guest,
    }
    for action, (managers, member, guest) in _SCOPES.items()
}

TICKET_WORKERS = MANAGER_ROLES | {Role.MEMBER}

# A capability is an action allowed on any ticket (the owner/admin column's `ANY`); other
# services decide with these names instead of knowing which roles hold them.
CAPABILITY_ACTIONS: dict[Capability, Action] = {
    Capability.VIEW_TICKETS: Action.VIEW,
    Capability.CREATE_TICKETS: Action.CREATE,
    Capability.EDIT_TICKETS: Action.EDIT,
    Capability.ADD_NOTES: Action.ADD_NOTE,
    Capability.LINK_CONVERSATIONS: Action.LINK_CONVERSATION,
    Capability.CHANGE_STATUS: Action.CHANGE_STATUS,
    Capability.ASSIGN_TICKETS: Action.ASSIGN,
    Capability.CLOSE_TICKETS: Action.CLOSE,
    Capability.MARK_SPAM: Action.MARK_SPAM,
    Capability.DELETE_TICKETS: Action.DELETE,
    # A deleted ticket's history (notes included) is for those who may delete tickets.
    Capability.READ_DELETED_HISTORY: Action.DELETE,
    Capability.CONFIGURE_SETTINGS: Action.CONFIGURE,
    Capability.MANAGE_MEMBERS: Action.MANAGE_MEMBERS,
}


class RoleHolder(Protocol):
    """Who asks: a member of the workspace (the domain's `Member`)."""

    @property
    def id(self) -> UUID: ...

    @property
    def role(self) -> Role: ...


class Assignable(Protocol):
    @property
    def assignee_id(self) -> UUID | None: ...


def capabilities_of(role: Role) -> list[Capability]:
    """What `role` may do on any ticket, in the contract's order."""
    return [
        capability
        for capability, action in CAPABILITY_ACTIONS.items()
        if MATRIX[action][role] is Scope.ANY
    ]


def ensure_allowed(actor: RoleHolder, action: Action, ticket: Assignable | None = None) -> None:
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


def ensure_can_create_ticket(actor: RoleHolder, assignee_id: UUID | None) -> None:
    ensure_allowed(actor, Action.CREATE)
    if actor.role is Role.MEMBER and assignee_id not in (None, actor.id):
        raise Forbidden(
            "A member may create a ticket only unassigned or assigned to themselves; "
            "ask an admin to assign it to someone else."
        )


def ensure_can_work_tickets(member: RoleHolder) -> None:
    """The assignee of a ticket must be someone who can work it."""
    if member.role not in TICKET_WORKERS:
        raise Forbidden(
            f"A {member.role} cannot be assigned tickets; pick an owner, admin or member.",
        )
