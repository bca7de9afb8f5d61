"""A subject of the full 200 characters whose case folding is longer than the subject (one
'ﬃ' folds to 'ffi', one 'ß' to 'ss') is stored, listed and found, on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import func, select

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.store import tables
from services.ticket_core.store.ticket_list import TicketFilter
from shared.contracts.tickets import SUBJECT_MAX_LENGTH


@pytest.mark.parametrize(
    ("character", "searched"),
    [("ﬃ", ["ffiffi", "FFI", "ﬃﬃ"]), ("ß", ["ssss", "SS", "ßß"])],
)
async def test_a_full_length_subject_that_folds_longer_is_created_listed_and_found(
    ticket_core: TicketCore, character: str, searched: list[str]
) -> None:
    subject = character * SUBJECT_MAX_LENGTH
    created = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    ticket = await handlers.create_ticket(
        ticket_core.unit_of_work(),
        handlers.CreateTicket(
            workspace_id=created.workspace.id,
            actor_id=created.owner.id,
            subject=subject,
            description="-",
        ),
    )
    other = await handlers.create_ticket(
        ticket_core.unit_of_work(),
        handlers.CreateTicket(
            workspace_id=created.workspace.id,
            actor_id=created.owner.id,
            subject="Printer broken",
            description="-",
        ),
    )

    listed = await handlers.list_tickets(
        ticket_core.unit_of_work(), created.owner.id, TicketFilter(created.workspace.id)
    )
    assert {row["id"]: row["subject"] for row in listed.rows} == {
        ticket.id: subject,
        other.id: "Printer broken",
    }
    for q in searched:
        found = await handlers.list_tickets(
            ticket_core.unit_of_work(),
            created.owner.id,
            TicketFilter(created.workspace.id, query=q),
        )
        assert [row["id"] for row in found.rows] == [ticket.id], q
    async with ticket_core.engine.connect() as connection:
        stored = await connection.scalar(
            select(func.length(tables.tickets.c.subject_folded)).where(
                tables.tickets.c.id == ticket.id
            )
        )
    assert stored == len(subject.casefold()) > SUBJECT_MAX_LENGTH


async def test_a_subject_edited_to_one_that_folds_longer_is_stored_and_found(
    ticket_core: TicketCore,
) -> None:
    created = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    ticket = await handlers.create_ticket(
        ticket_core.unit_of_work(),
        handlers.CreateTicket(
            workspace_id=created.workspace.id,
            actor_id=created.owner.id,
            subject="Short",
            description="-",
        ),
    )
    subject = "ﬃ" * SUBJECT_MAX_LENGTH

    await handlers.update_ticket(
        ticket_core.unit_of_work(),
        handlers.UpdateTicket(
            workspace_id=created.workspace.id,
            actor_id=created.owner.id,
            ticket_id=ticket.id,
            changes={"subject": subject},
        ),
    )

    found = await handlers.list_tickets(
        ticket_core.unit_of_work(),
        created.owner.id,
        TicketFilter(created.workspace.id, query="ffi"),
    )
    assert [(row["id"], row["subject"]) for row in found.rows] == [(ticket.id, subject)]
