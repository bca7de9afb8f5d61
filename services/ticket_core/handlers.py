"""ticket-core's use cases: one short function per command. Each loads what the rule needs,
lets the domain decide, and commits the result with its events through the unit of work."""

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from shared.contracts.api import Role

from .domain import permissions
from .domain.errors import InvalidInput, NotFound, UnknownMember
from .domain.members import Member, Workspace
from .domain.tickets import Ticket
from .store.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class CreateTicket:
    workspace_id: UUID
    actor_id: UUID
    subject: str
    description: str
    priority: str | None = None
    assignee_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class NewWorkspace:
    workspace: Workspace
    owner: Member


def _now() -> datetime:
    return datetime.now(UTC)


async def _acting_member(uow: UnitOfWork, workspace_id: UUID, member_id: UUID) -> Member:
    member = await uow.members.get(workspace_id, member_id)
    if member is None:
        raise UnknownMember("You are not a member of this workspace (any more).")
    return member


async def create_workspace(uow: UnitOfWork, name: str, owner_email: str) -> NewWorkspace:
    async with uow:
        now = _now()
        workspace = Workspace.found(name, now)
        owner = Member.join(workspace.id, owner_email, Role.OWNER, now)
        await uow.workspaces.add(workspace)
        await uow.members.add(owner)
        await uow.commit()
    return NewWorkspace(workspace=workspace, owner=owner)


async def get_member(uow: UnitOfWork, workspace_id: UUID, member_id: UUID) -> Member:
    async with uow:
        return await _acting_member(uow, workspace_id, member_id)


async def create_ticket(uow: UnitOfWork, command: CreateTicket) -> Ticket:
    async with uow:
        actor = await _acting_member(uow, command.workspace_id, command.actor_id)
        permissions.ensure_can_create_ticket(actor, command.assignee_id)
        if command.assignee_id is not None:
            assignee = await uow.members.get(command.workspace_id, command.assignee_id)
            if assignee is None:
                raise InvalidInput(
                    "unknown_assignee",
                    f"No member {command.assignee_id} in this workspace; "
                    "pick the assignee from GET /api/v1/members.",
                    field="assignee_id",
                )
            permissions.ensure_can_work_tickets(assignee)
        ticket = Ticket.create(
            workspace_id=command.workspace_id,
            number=await uow.workspaces.take_ticket_number(command.workspace_id),
            subject=command.subject,
            description=command.description,
            priority=command.priority,
            assignee_id=command.assignee_id,
            actor=actor.as_actor,
            now=_now(),
        )
        await uow.tickets.add(ticket)
        await uow.commit()
    return ticket


async def get_ticket(
    uow: UnitOfWork, workspace_id: UUID, actor_id: UUID, ticket_id: UUID
) -> Ticket:
    async with uow:
        await _acting_member(uow, workspace_id, actor_id)
        ticket = await uow.tickets.get(workspace_id, ticket_id)
        if ticket is None:
            raise NotFound(f"No ticket {ticket_id} in this workspace.")
        return ticket
