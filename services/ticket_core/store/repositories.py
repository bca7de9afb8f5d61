"""Load and save domain objects with plain SQL. The workspace id is part of every lookup, so
nothing of one workspace is reachable from another by id."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import RowMapping, Select, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.api import Role
from shared.contracts.tickets import TicketPriority, TicketStatus

from ..domain.errors import ConcurrentUpdate, Conflict
from ..domain.members import AUTO_CLOSE_DAYS_RANGE, Member, Workspace
from ..domain.tickets import URGENCY, Ticket
from . import tables
from .ticket_list import (
    NO_ASSIGNEE,
    StatusCounts,
    TicketFilter,
    TicketListPage,
    count_by_status,
    list_tickets,
)

# Where a ticket counts in `ticket_counts`: (status, priority, assignee), None once deleted.
CountKey = tuple[str, str, UUID] | None


class WorkspaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: list[Workspace] = []

    async def add(self, workspace: Workspace) -> None:
        await self._session.execute(
            insert(tables.workspaces).values(
                id=workspace.id,
                name=workspace.name,
                last_ticket_number=0,
                auto_close_after_days=workspace.auto_close_after_days,
                last_sequence=workspace.last_sequence,
                created_at=workspace.created_at,
            )
        )
        self.seen.append(workspace)

    async def get(self, workspace_id: UUID) -> Workspace | None:
        w = tables.workspaces
        row = await _first_row(self._session, select(w).where(w.c.id == workspace_id))
        if row is None:
            return None
        workspace = Workspace(
            id=row["id"],
            name=row["name"],
            created_at=row["created_at"],
            auto_close_after_days=row["auto_close_after_days"],
            last_sequence=row["last_sequence"],
        )
        self.seen.append(workspace)
        return workspace

    async def update(self, workspace: Workspace) -> None:
        await self._session.execute(
            update(tables.workspaces)
            .where(tables.workspaces.c.id == workspace.id)
            .values(
                auto_close_after_days=workspace.auto_close_after_days,
                last_sequence=workspace.last_sequence,
            )
        )

    async def take_ticket_number(self, workspace_id: UUID) -> int:
        """The next ticket number; the row lock held until commit keeps numbers gap-free."""
        return (await self.take_ticket_numbers({workspace_id: 1}))[workspace_id]

    async def take_ticket_numbers(self, wanted: Mapping[UUID, int]) -> dict[UUID, int]:
        """The first of `wanted[w]` consecutive new numbers of each workspace `w`. The rows
        stay locked until commit, which keeps numbers gap-free; they are taken in id order,
        so two transactions never wait for each other in a cycle."""
        w = tables.workspaces
        first_numbers: dict[UUID, int] = {}
        for workspace_id in sorted(wanted):
            count = wanted[workspace_id]
            last = await self._session.scalar(
                update(w)
                .where(w.c.id == workspace_id)
                .values(last_ticket_number=w.c.last_ticket_number + count)
                .returning(w.c.last_ticket_number)
            )
            if last is None:
                raise LookupError(f"workspace {workspace_id} does not exist")
            first_numbers[workspace_id] = int(last) - count + 1
        return first_numbers

    async def give_back_ticket_numbers(self, unused: Mapping[UUID, int]) -> None:
        """Return the last `unused[w]` numbers taken in this transaction (still locked, so
        nobody else has seen them)."""
        w = tables.workspaces
        for workspace_id in sorted(unused):
            if unused[workspace_id]:
                await self._session.execute(
                    update(w)
                    .where(w.c.id == workspace_id)
                    .values(last_ticket_number=w.c.last_ticket_number - unused[workspace_id])
                )

    async def existing(self, workspace_ids: Iterable[UUID]) -> set[UUID]:
        """Which of these workspaces exist."""
        w = tables.workspaces
        return set(
            (
                await self._session.scalars(select(w.c.id).where(w.c.id.in_(set(workspace_ids))))
            ).all()
        )


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: list[Member] = []

    async def add(self, member: Member) -> None:
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    insert(tables.members).values(
                        id=member.id,
                        workspace_id=member.workspace_id,
                        email=member.email,
                        role=member.role.value,
                        last_sequence=member.last_sequence,
                        created_at=member.created_at,
                    )
                )
        except IntegrityError as error:
            raise Conflict(
                "member_exists", f"{member.email} is already a member of this workspace."
            ) from error
        self.seen.append(member)

    async def get(self, workspace_id: UUID, member_id: UUID) -> Member | None:
        m = tables.members
        row = await _first_row(
            self._session, select(m).where(m.c.workspace_id == workspace_id, m.c.id == member_id)
        )
        if row is None:
            return None
        member = _member_from_row(row)
        self.seen.append(member)
        return member

    async def get_many(self, keys: Iterable[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], Member]:
        """The members these (workspace id, member id) name, those that exist; one look-up."""
        wanted = set(keys)
        if not wanted:
            return {}
        m = tables.members
        rows = (
            await self._session.execute(
                select(m).where(m.c.id.in_({member_id for _, member_id in wanted}))
            )
        ).mappings()
        found: dict[tuple[UUID, UUID], Member] = {}
        for row in rows:
            if (row["workspace_id"], row["id"]) in wanted:
                found[(row["workspace_id"], row["id"])] = member = _member_from_row(row)
                self.seen.append(member)
        return found

    async def list(self, workspace_id: UUID) -> list[Member]:
        rows = (
            await self._session.execute(
                select(tables.members)
                .where(tables.members.c.workspace_id == workspace_id)
                .order_by(tables.members.c.created_at, tables.members.c.email)
            )
        ).mappings()
        return [_member_from_row(row) for row in rows]

    async def count_owners(self, workspace_id: UUID) -> int:
        count = await self._session.scalar(
            select(func.count()).where(
                tables.members.c.workspace_id == workspace_id,
                tables.members.c.role == Role.OWNER.value,
            )
        )
        return int(count or 0)

    async def lock_workspace_roles(self, workspace_id: UUID) -> None:
        """Serialise role changes in one workspace, so two demotions cannot both see two
        owners and leave none (PostgreSQL row lock; SQLite's write lock already does this)."""
        await self._session.execute(
            select(tables.workspaces.c.id)
            .where(tables.workspaces.c.id == workspace_id)
            .with_for_update()
        )

    async def update(self, member: Member) -> None:
        await self._session.execute(
            update(tables.members)
            .where(tables.members.c.id == member.id)
            .values(role=member.role.value, last_sequence=member.last_sequence)
        )

    async def remove(self, member: Member) -> None:
        await self._session.execute(delete(tables.members).where(tables.members.c.id == member.id))


class TicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: list[Ticket] = []
        # What each ticket was when read (or last written), to know what a write changes.
        self._count_keys_read: dict[UUID, CountKey] = {}
        self._links_read: dict[UUID, frozenset[str]] = {}

    def _remember(self, ticket: Ticket) -> Ticket:
        self.seen.append(ticket)
        self._note_written(ticket)
        return ticket

    def _note_written(self, ticket: Ticket) -> None:
        self._count_keys_read[ticket.id] = _count_key(ticket)
        self._links_read[ticket.id] = frozenset(ticket.conversation_ids)

    async def add(self, ticket: Ticket) -> None:
        await self.add_all([ticket])

    async def add_all(self, tickets: Sequence[Ticket]) -> None:
        """New tickets, one statement per table however many there are."""
        if not tickets:
            return
        await self._session.execute(insert(tables.tickets), [_ticket_row(t) for t in tickets])
        links = [
            {"workspace_id": t.workspace_id, "conversation_id": c, "ticket_id": t.id}
            for t in tickets
            for c in t.conversation_ids
        ]
        if links:
            await self._insert_links(links)
        await self._add_to_counts(
            [(t.workspace_id, key, +1) for t in tickets if (key := _count_key(t)) is not None]
        )
        for ticket in tickets:
            self._remember(ticket)

    async def get(self, workspace_id: UUID, ticket_id: UUID) -> Ticket | None:
        """A ticket of this workspace that is not deleted."""
        t = tables.tickets
        row = await _first_row(
            self._session,
            select(t).where(
                t.c.workspace_id == workspace_id, t.c.id == ticket_id, t.c.deleted_at.is_(None)
            ),
        )
        if row is None:
            return None
        return self._remember(_ticket_from_row(row))

    async def assigned_to(self, workspace_id: UUID, member_id: UUID) -> list[Ticket]:
        rows = (
            await self._session.execute(
                select(tables.tickets).where(
                    tables.tickets.c.workspace_id == workspace_id,
                    tables.tickets.c.assignee_id == member_id,
                    tables.tickets.c.deleted_at.is_(None),
                )
            )
        ).mappings()
        return [self._remember(_ticket_from_row(row)) for row in rows]

    async def update(self, ticket: Ticket) -> None:
        """Write a changed ticket; refused if someone else wrote it since it was read."""
        if not ticket.changed:
            return
        row = _ticket_row(ticket)
        del row["id"], row["workspace_id"], row["number"], row["created_at"]
        result = await self._session.execute(
            update(tables.tickets)
            .where(tables.tickets.c.id == ticket.id, tables.tickets.c.version == ticket.version - 1)
            .values(**row)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(
                "Someone changed this ticket at the same moment; reload it and try again."
            )
        await self._recount(
            ticket.workspace_id, self._count_keys_read[ticket.id], _count_key(ticket)
        )
        links_before = self._links_read[ticket.id]
        self._note_written(ticket)
        for conversation_id in set(ticket.conversation_ids) - links_before:
            await self._link(ticket, conversation_id)
        gone = links_before - set(ticket.conversation_ids)
        if ticket.deleted_at is not None:
            gone = links_before
        if gone:
            await self._session.execute(
                delete(tables.ticket_conversations).where(
                    tables.ticket_conversations.c.workspace_id == ticket.workspace_id,
                    tables.ticket_conversations.c.conversation_id.in_(gone),
                )
            )

    async def resolved_long_enough(self, now: datetime) -> list[tuple[UUID, UUID]]:
        """(workspace id, ticket id) of resolved tickets untouched for their workspace's
        auto-close period."""
        t, w = tables.tickets, tables.workspaces
        rows = await self._session.execute(
            select(t.c.workspace_id, t.c.id, t.c.updated_at, w.c.auto_close_after_days)
            .join(w, w.c.id == t.c.workspace_id)
            .where(
                t.c.status == TicketStatus.RESOLVED.value,
                t.c.deleted_at.is_(None),
                t.c.updated_at <= now - timedelta(days=AUTO_CLOSE_DAYS_RANGE.start),
            )
        )
        return [
            (workspace_id, ticket_id)
            for workspace_id, ticket_id, updated_at, days in rows
            if updated_at <= now - timedelta(days=days)
        ]

    async def page(self, spec: TicketFilter) -> TicketListPage:
        return await list_tickets(self._session, spec)

    async def counts(self, spec: TicketFilter) -> StatusCounts:
        return await count_by_status(self._session, spec)

    async def _recount(self, workspace_id: UUID, before: CountKey, after: CountKey) -> None:
        """Move the ticket's one count from `before` to `after` in the rollup. Rows are
        touched in key order, so two transactions never wait for each other in a cycle."""
        if before == after:
            return
        await self._add_to_counts(
            [
                (workspace_id, key, delta)
                for key, delta in ((before, -1), (after, +1))
                if key is not None
            ]
        )

    async def _add_to_counts(self, deltas: Iterable[tuple[UUID, CountKey, int]]) -> None:
        """Add each delta to its row of the rollup, summed per row, in one statement. Rows are
        touched in key order, so two transactions never wait for each other in a cycle."""
        summed: dict[tuple[UUID, str, str, UUID], int] = {}
        for workspace_id, key, delta in deltas:
            assert key is not None
            row_key = (workspace_id, *key)
            summed[row_key] = summed.get(row_key, 0) + delta
        rows = [
            {
                "workspace_id": workspace_id,
                "status": status,
                "priority": priority,
                "assignee_key": assignee_key,
                "tickets": delta,
            }
            for (workspace_id, status, priority, assignee_key), delta in sorted(summed.items())
            if delta
        ]
        if not rows:
            return
        c = tables.ticket_counts
        dialect = self._session.get_bind().dialect.name
        upsert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(c)
        await self._session.execute(
            upsert.on_conflict_do_update(
                index_elements=[c.c.workspace_id, c.c.status, c.c.priority, c.c.assignee_key],
                set_={"tickets": c.c.tickets + upsert.excluded.tickets},
            ),
            rows,
        )

    async def linked_tickets(
        self, conversations: Iterable[tuple[UUID, str]]
    ) -> dict[tuple[UUID, str], Ticket]:
        """The (not deleted) ticket each (workspace id, conversation id) is linked to, if any;
        one look-up for all. A ticket linked to several of them is one object."""
        wanted = set(conversations)
        if not wanted:
            return {}
        t, links = tables.tickets, tables.ticket_conversations
        rows = (
            await self._session.execute(
                select(links.c.conversation_id, t)
                .join(t, t.c.id == links.c.ticket_id)
                .where(
                    links.c.conversation_id.in_({conversation for _, conversation in wanted}),
                    links.c.workspace_id.in_({workspace for workspace, _ in wanted}),
                    t.c.deleted_at.is_(None),
                )
            )
        ).mappings()
        loaded: dict[UUID, Ticket] = {}
        linked: dict[tuple[UUID, str], Ticket] = {}
        for row in rows:
            key = (row["workspace_id"], row["conversation_id"])
            if key in wanted:
                if row["id"] not in loaded:
                    loaded[row["id"]] = self._remember(_ticket_from_row(row))
                linked[key] = loaded[row["id"]]
        return linked

    async def ticket_linked_to(self, workspace_id: UUID, conversation_id: str) -> UUID | None:
        linked: UUID | None = await self._session.scalar(
            select(tables.ticket_conversations.c.ticket_id).where(
                tables.ticket_conversations.c.workspace_id == workspace_id,
                tables.ticket_conversations.c.conversation_id == conversation_id,
            )
        )
        return linked

    async def _link(self, ticket: Ticket, conversation_id: str) -> None:
        await self._insert_links(
            [
                {
                    "workspace_id": ticket.workspace_id,
                    "conversation_id": conversation_id,
                    "ticket_id": ticket.id,
                }
            ]
        )

    async def _insert_links(self, links: list[dict[str, Any]]) -> None:
        try:
            async with self._session.begin_nested():
                await self._session.execute(insert(tables.ticket_conversations), links)
        except IntegrityError as error:
            conversations = ", ".join(str(link["conversation_id"]) for link in links)
            raise Conflict(
                "conversation_already_linked",
                f"Conversation {conversations} was just linked to another ticket; "
                "unlink it there first.",
            ) from error


class IdempotentAnswer(NamedTuple):
    workspace_id: UUID
    member_id: UUID
    key: str
    request_fingerprint: str
    response: dict[str, Any]
    created_at: datetime


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find(self, workspace_id: UUID, member_id: UUID, key: str) -> RowMapping | None:
        keys = tables.idempotency_keys
        return await _first_row(
            self._session,
            select(keys.c.request_fingerprint, keys.c.response).where(
                keys.c.workspace_id == workspace_id,
                keys.c.member_id == member_id,
                keys.c.key == key,
            ),
        )

    async def remember_all(self, answers: Sequence[IdempotentAnswer]) -> None:
        """The answers to creates that carried an Idempotency-Key, one statement for all."""
        if answers:
            await self._session.execute(
                insert(tables.idempotency_keys), [answer._asdict() for answer in answers]
            )


async def _first_row(session: AsyncSession, statement: Select[Any]) -> RowMapping | None:
    row: RowMapping | None = (await session.execute(statement)).mappings().first()
    return row


def _ticket_row(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "workspace_id": ticket.workspace_id,
        "number": ticket.number,
        "subject": ticket.subject,
        "subject_folded": ticket.subject.casefold(),
        "description": ticket.description,
        "status": ticket.status.value,
        "priority": ticket.priority.value,
        "priority_rank": URGENCY[ticket.priority],
        "assignee_id": ticket.assignee_id,
        "conversation_ids": list(ticket.conversation_ids),
        "version": ticket.version,
        "last_sequence": ticket.last_sequence,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "deleted_at": ticket.deleted_at,
    }


def _count_key(ticket: Ticket) -> CountKey:
    if ticket.deleted_at is not None:
        return None
    return (ticket.status.value, ticket.priority.value, ticket.assignee_id or NO_ASSIGNEE)


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
        deleted_at=row["deleted_at"],
    )


def _member_from_row(row: RowMapping) -> Member:
    return Member(
        id=row["id"],
        workspace_id=row["workspace_id"],
        email=row["email"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        last_sequence=row["last_sequence"],
    )
