"""Who may do what: the roles-and-permissions matrix of the architecture, decided here only.

Every command checks its permission through this module, whichever entrypoint it came from.
"""

from uuid import UUID

from shared.contracts.api import Role

from .errors import Forbidden
from .members import Member

TICKET_WORKERS = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})


def ensure_can_create_ticket(actor: Member, assignee_id: UUID | None) -> None:
    if actor.role not in TICKET_WORKERS:
        raise Forbidden(f"A {actor.role} cannot create tickets; ask an admin for the member role.")
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
