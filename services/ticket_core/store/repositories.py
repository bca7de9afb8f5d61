"""Load and save domain objects with plain SQL; workspace id is part of every lookup, so
nothing of one workspace is reachable from another."""

from uuid import UUID

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.api import Role
from shared.contracts.tickets import TicketPriority, TicketStatus

from ..domain.members import Member, Workspace
from ..domain.tickets import Ticket
from . import tables


class WorkspaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, workspace: Workspace) -> None:
        await self._session.execute(
            insert(tables.workspaces).values(
                id=workspace.id,
                name=workspace.name,
                last_ticket_number=0,
                created_at=workspace.created_at,
            )
        )

    async def take_ticket_number(self, workspace_id: UUID) -> int:
        """The next ticket number; the row lock held until commit keeps numbers gap-free."""
        number = await self._session.scalar(
            update(tables.workspaces)
            .where(tables.workspaces.c.id == workspace_id)
            .values(last_ticket_number=tables.workspaces.c.last_ticket_number + 1)
            .returning(tables.workspaces.c.last_ticket_number)
        )
        if number is None:
            raise LookupError(f"workspace {workspace_id} does not exist")
        return int(number)


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, member: Member) -> None:
        await self._session.execute(
            insert(tables.members).values(
                id=member.id,
                workspace_id=member.workspace_id,
                email=member.email,
                role=member.role.value,
                created_at=member.created_at,
            )
        )

    async def get(self, workspace_id: UUID, member_id: UUID) -> Member | None:
        row = (
            (
                await self._session.execute(
                    select(tables.members).where(
                        tables.members.c.workspace_id == workspace_id,
                        tables.members.c.id == member_id,
                    )
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return Member(
            id=row["id"],
            workspace_id=row["workspace_id"],
            email=row["email"],
            role=Role(row["role"]),
            created_at=row["created_at"],
        )


class TicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: list[Ticket] = []

    async def add(self, ticket: Ticket) -> None:
        await self._session.execute(
            insert(tables.tickets).values(
                id=ticket.id,
                workspace_id=ticket.workspace_id,
                number=ticket.number,
                subject=ticket.subject,
                description=ticket.description,
                status=ticket.status.value,
                priority=ticket.priority.value,
                assignee_id=ticket.assignee_id,
                conversation_ids=ticket.conversation_ids,
                version=ticket.version,
                last_sequence=ticket.last_sequence,
                created_at=ticket.created_at,
                updated_at=ticket.updated_at,
            )
        )
        self.seen.append(ticket)

    async def get(self, workspace_id: UUID, ticket_id: UUID) -> Ticket | None:
        row = (
            (
                await self._session.execute(
                    select(tables.tickets).where(
                        tables.tickets.c.workspace_id == workspace_id,
                        tables.tickets.c.id == ticket_id,
                    )
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        ticket = _ticket_from_row(row)
        self.seen.append(ticket)
        return ticket


def _ticket_from_row(row: RowMapping) -> Ticket:
    return Ticket(
        id=row["id"],
        workspace_id=row["workspace_id"],
        number=row["number"],
        subject=row["subject"],
        description=row["description"],
        status=TicketStatus(row["status"]),
        priority=TicketPriority(row["priority"]),
        assignee_id=row["assignee_id"],
        conversation_ids=list(row["conversation_ids"] or []),
        version=row["version"],
        last_sequence=row["last_sequence"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
