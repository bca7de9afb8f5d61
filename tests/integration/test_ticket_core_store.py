"""ticket-core's store on SQLite and PostgreSQL: state and event commit together, numbers
never repeat or skip, and a refused command leaves nothing behind."""

import asyncio
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    UnknownMember,
)
from services.ticket_core.domain.members import Member
from services.ticket_core.store import tables
from shared.contracts.api import Role


async def count(core: TicketCore, table: object) -> int:
    async with core.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def new_workspace(core: TicketCore) -> handlers.NewWorkspace:
    return await handlers.create_workspace(core.unit_of_work(), "Acme", "owner@acme.io")


def create(created: handlers.NewWorkspace, **overrides: object) -> handlers.CreateTicket:
    values: dict[str, object] = {
        "workspace_id": created.workspace.id,
        "actor_id": created.owner.id,
        "subject": "Checkout fails",
        "description": "Every payment fails since 9:00.",
    }
    values.update(overrides)
    return handlers.CreateTicket(**values)  # type: ignore[arg-type]


async def test_a_ticket_and_its_created_event_are_committed_together(
    ticket_core: TicketCore,
) -> None:
    created = await new_workspace(ticket_core)

    ticket = await handlers.create_ticket(ticket_core.unit_of_work(), create(created))

    stored = await handlers.get_ticket(
        ticket_core.unit_of_work(), created.workspace.id, created.owner.id, ticket.id
    )
    assert stored.snapshot() == ticket.snapshot()
    async with ticket_core.session_factory() as session:
        [row] = (
            (
                await session.execute(
                    select(tables.outbox).where(tables.outbox.c.message_key == str(ticket.id))
                )
            )
            .mappings()
            .all()
        )
    event = json.loads(row["payload"])
    assert row["topic"] == "ticket.events.v1"
    assert row["message_key"] == str(ticket.id)
    assert row["published_at"] is None
    assert event["type"] == "ticket.created"
    assert event["subject"] == str(ticket.id)
    assert event["workspace_id"] == str(created.workspace.id)
    assert event["sequence"] == 1
    assert event["actor"] == {"type": "member", "id": str(created.owner.id)}
    assert event["data"]["ticket"]["number"] == 1


async def test_concurrent_creates_get_numbers_without_gaps_or_repeats(
    ticket_core: TicketCore,
) -> None:
    created = await new_workspace(ticket_core)
    other = await handlers.create_workspace(ticket_core.unit_of_work(), "Other", "o@other.io")

    tickets = await asyncio.gather(
        *(
            handlers.create_ticket(ticket_core.unit_of_work(), create(created, subject=f"T{i}"))
            for i in range(25)
        ),
        handlers.create_ticket(ticket_core.unit_of_work(), create(other)),
    )

    numbers = sorted(t.number for t in tickets if t.workspace_id == created.workspace.id)
    assert numbers == list(range(1, 26))
    assert [t.number for t in tickets if t.workspace_id == other.workspace.id] == [1]


@pytest.mark.parametrize(
    ("overrides", "error", "code"),
    [
        ({"subject": "   "}, InvalidInput, "subject_required"),
        ({"subject": "x" * 201}, InvalidInput, "subject_too_long"),
        ({"priority": "urgent"}, InvalidInput, "unknown_priority"),
        ({"assignee_id": uuid4()}, Conflict, "unknown_assignee"),
        ({"actor_id": uuid4()}, UnknownMember, "unknown_member"),
    ],
)
async def test_a_refused_create_stores_nothing_and_takes_no_number(
    ticket_core: TicketCore, overrides: dict[str, object], error: type[Exception], code: str
) -> None:
    created = await new_workspace(ticket_core)

    with pytest.raises(error) as refused:
        await handlers.create_ticket(ticket_core.unit_of_work(), create(created, **overrides))

    assert getattr(refused.value, "code", None) == code
    assert await count(ticket_core, tables.tickets) == 0
    assert await count(ticket_core, tables.outbox) == 1  # the owner's member.added only
    ticket = await handlers.create_ticket(ticket_core.unit_of_work(), create(created))
    assert ticket.number == 1


async def test_a_guest_cannot_create_and_nothing_is_stored(ticket_core: TicketCore) -> None:
    created = await new_workspace(ticket_core)
    guest = Member.join(created.workspace.id, "guest@acme.io", Role.GUEST, datetime.now(UTC))
    async with ticket_core.unit_of_work() as uow:
        await uow.members.add(guest)
        await uow.commit()

    with pytest.raises(Forbidden):
        await handlers.create_ticket(ticket_core.unit_of_work(), create(created, actor_id=guest.id))
    assert await count(ticket_core, tables.tickets) == 0


async def test_a_ticket_of_another_workspace_is_not_found(ticket_core: TicketCore) -> None:
    mine = await new_workspace(ticket_core)
    theirs = await handlers.create_workspace(ticket_core.unit_of_work(), "B", "b@b.io")
    ticket = await handlers.create_ticket(ticket_core.unit_of_work(), create(theirs))

    with pytest.raises(NotFound):
        await handlers.get_ticket(
            ticket_core.unit_of_work(), mine.workspace.id, mine.owner.id, ticket.id
        )
