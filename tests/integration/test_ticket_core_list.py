"""The ticket list on SQLite and PostgreSQL: search through each database's own index, every
sort order paged by cursor, and counts per status that always equal the tickets themselves."""

import asyncio
import functools
import random
from collections import Counter
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.domain.errors import InvalidInput
from services.ticket_core.store import tables
from services.ticket_core.store.ticket_list import NO_ASSIGNEE, TicketFilter
from shared.contracts.api import TicketSort
from shared.contracts.tickets import TicketPriority, TicketStatus

SUBJECTS = [
    "Printer on floor 3 is broken",
    "Broken printer again",
    "Checkout fails with 100% discount",
    "Refund for order_42",
    "Ümlaut Straße in the invoice address",
    "VPN: can't connect from home",
    "Password reset e-mail never arrives",
    "Login page is slow",
]


async def seeded(core: TicketCore) -> handlers.NewWorkspace:
    created = await handlers.create_workspace(core.unit_of_work(), "Acme", "owner@acme.io")
    for subject in SUBJECTS:
        await handlers.create_ticket(
            core.unit_of_work(),
            handlers.CreateTicket(
                workspace_id=created.workspace.id,
                actor_id=created.owner.id,
                subject=subject,
                description="-",
            ),
        )
    return created


async def subjects_found(core: TicketCore, created: handlers.NewWorkspace, q: str) -> set[str]:
    page = await handlers.list_tickets(
        core.unit_of_work(),
        created.owner.id,
        TicketFilter(workspace_id=created.workspace.id, query=q),
    )
    return {row["subject"] for row in page.rows}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("printer", {"Printer on floor 3 is broken", "Broken printer again"}),
        ("PRINTER broken", {"Printer on floor 3 is broken", "Broken printer again"}),
        ("broken printer", {"Printer on floor 3 is broken", "Broken printer again"}),
        ("rinte", {"Printer on floor 3 is broken", "Broken printer again"}),
        ("floor 3", {"Printer on floor 3 is broken"}),  # a word under three letters
        ("3", {"Printer on floor 3 is broken"}),
        ("100%", {"Checkout fails with 100% discount"}),
        ("%", {"Checkout fails with 100% discount"}),
        ("order_42", {"Refund for order_42"}),
        ("_", {"Refund for order_42"}),
        ("can't", {"VPN: can't connect from home"}),
        ('"', set()),
        ("STRASSE", {"Ümlaut Straße in the invoice address"}),  # casefold: ß == ss
        ("ümlaut", {"Ümlaut Straße in the invoice address"}),
        ("printer refund", set()),  # every word must match
        ("e-mail", {"Password reset e-mail never arrives"}),
    ],
)
async def test_search_finds_every_word_as_a_substring_ignoring_case(
    ticket_core: TicketCore, q: str, expected: set[str]
) -> None:
    created = await seeded(ticket_core)

    assert await subjects_found(ticket_core, created, q) == expected


async def test_search_follows_subject_edits(ticket_core: TicketCore) -> None:
    created = await seeded(ticket_core)
    page = await handlers.list_tickets(
        ticket_core.unit_of_work(),
        created.owner.id,
        TicketFilter(workspace_id=created.workspace.id, query="slow"),
    )
    [login] = page.rows

    await handlers.update_ticket(
        ticket_core.unit_of_work(),
        handlers.UpdateTicket(
            workspace_id=created.workspace.id,
            actor_id=created.owner.id,
            ticket_id=login["id"],
            changes={"subject": "Login page times out"},
        ),
    )

    assert await subjects_found(ticket_core, created, "slow") == set()
    assert await subjects_found(ticket_core, created, "times out") == {"Login page times out"}


@pytest.mark.parametrize("sort", list(TicketSort))
async def test_every_sort_order_pages_through_all_tickets_once_while_tickets_change(
    ticket_core: TicketCore, sort: TicketSort
) -> None:
    created = await handlers.create_workspace(ticket_core.unit_of_work(), "A", "o@a.io")
    priorities = list(TicketPriority)
    ids = []
    for n in range(23):
        ticket = await handlers.create_ticket(
            ticket_core.unit_of_work(),
            handlers.CreateTicket(
                workspace_id=created.workspace.id,
                actor_id=created.owner.id,
                subject=f"Ticket {n}",
                description="-",
                priority=priorities[n % 4].value,
            ),
        )
        ids.append(ticket.id)
    spec = TicketFilter(workspace_id=created.workspace.id, sort=sort, limit=5)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await handlers.list_tickets(
            ticket_core.unit_of_work(),
            created.owner.id,
            TicketFilter(workspace_id=spec.workspace_id, sort=sort, limit=5, cursor=cursor),
        )
        seen.extend(page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # A ticket already shown changes: it moves to the front, and is not shown again.
        await handlers.update_ticket(
            ticket_core.unit_of_work(),
            handlers.UpdateTicket(
                workspace_id=created.workspace.id,
                actor_id=created.owner.id,
                ticket_id=page.rows[0]["id"],
                changes={"description": "touched"},
            ),
        )

    assert sorted(str(row["id"]) for row in seen) == sorted(str(i) for i in ids)
    if sort is TicketSort.PRIORITY:
        ranks = [priorities.index(TicketPriority(row["priority"])) for row in seen]
        assert ranks == sorted(ranks)
    else:
        column = "created_at" if sort is TicketSort.CREATED else "updated_at"
        assert [row[column] for row in seen] == sorted((row[column] for row in seen), reverse=True)


async def test_a_cursor_is_the_tickets_position_in_every_sort_order(
    ticket_core: TicketCore,
) -> None:
    """A cursor names a ticket's place, not a page of one order: one given out by the default
    order continues the priority order right after the same ticket."""
    created = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    workspace_id = created.workspace.id
    for n, priority in enumerate(["low", "critical", "normal", "high"] * 2):
        await handlers.create_ticket(
            ticket_core.unit_of_work(),
            handlers.CreateTicket(workspace_id, created.owner.id, f"T{n}", "", priority=priority),
        )
    list_tickets = functools.partial(handlers.list_tickets, actor_id=created.owner.id)
    page = await list_tickets(ticket_core.unit_of_work(), spec=TicketFilter(workspace_id, limit=2))
    assert page.next_cursor is not None
    last_id = page.rows[-1]["id"]
    by_priority = await list_tickets(
        ticket_core.unit_of_work(), spec=TicketFilter(workspace_id, sort=TicketSort.PRIORITY)
    )
    priority_ids = [row["id"] for row in by_priority.rows]

    continued = await list_tickets(
        ticket_core.unit_of_work(),
        spec=TicketFilter(workspace_id, sort=TicketSort.PRIORITY, cursor=page.next_cursor),
    )

    assert [row["id"] for row in continued.rows] == priority_ids[priority_ids.index(last_id) + 1 :]


@pytest.mark.parametrize(
    "cursor", ["bm9wZQ==", "1.2.3", "1.2.3.abc", "1.2.3." + "0" * 32 + "\n", "x" * 500]
)
async def test_a_cursor_of_another_form_is_refused(ticket_core: TicketCore, cursor: str) -> None:
    created = await seeded(ticket_core)

    with pytest.raises(InvalidInput) as refused:
        await handlers.list_tickets(
            ticket_core.unit_of_work(),
            created.owner.id,
            TicketFilter(workspace_id=created.workspace.id, cursor=cursor),
        )
    assert refused.value.code == "invalid_cursor"


async def actual_counts(core: TicketCore) -> Counter[tuple[UUID, str, str, UUID]]:
    t = tables.tickets
    async with core.session_factory() as session:
        rows = await session.execute(
            select(t.c.workspace_id, t.c.status, t.c.priority, t.c.assignee_id, func.count())
            .where(t.c.deleted_at.is_(None))
            .group_by(t.c.workspace_id, t.c.status, t.c.priority, t.c.assignee_id)
        )
        return Counter({(w, s, p, a or NO_ASSIGNEE): int(n) for w, s, p, a, n in rows.all() if n})


async def rollup(core: TicketCore) -> Counter[tuple[UUID, str, str, UUID]]:
    c = tables.ticket_counts
    async with core.session_factory() as session:
        rows = await session.execute(
            select(c.c.workspace_id, c.c.status, c.c.priority, c.c.assignee_key, c.c.tickets)
        )
        return Counter({(w, s, p, a): int(n) for w, s, p, a, n in rows.all() if n})


async def test_counts_per_status_always_equal_the_tickets(ticket_core: TicketCore) -> None:
    created = await handlers.create_workspace(ticket_core.unit_of_work(), "A", "o@a.io")
    agent = await handlers.add_member(
        ticket_core.unit_of_work(), created.workspace.id, created.owner.id, "a@a.io", "member"
    )
    ws, owner = created.workspace.id, created.owner.id
    chance = random.Random(7)
    tickets = []
    for n in range(30):
        ticket = await handlers.create_ticket(
            ticket_core.unit_of_work(),
            handlers.CreateTicket(
                workspace_id=ws,
                actor_id=owner,
                subject=f"Ticket {n}",
                description="-",
                priority=chance.choice(list(TicketPriority)).value,
                assignee_id=chance.choice([None, owner, agent.id]),
            ),
        )
        tickets.append(ticket.id)
    for ticket_id in chance.sample(tickets, 20):
        changes: dict[str, Any] = chance.choice(
            [
                {"status": "open"},
                {"status": "spam"},
                {"priority": "critical"},
                {"assignee_id": str(agent.id)},
                {"assignee_id": None},
                {"status": "in_progress", "priority": "low"},
            ]
        )
        await handlers.update_ticket(
            ticket_core.unit_of_work(),
            handlers.UpdateTicket(
                workspace_id=ws, actor_id=owner, ticket_id=ticket_id, changes=changes
            ),
        )
    for ticket_id in tickets[:4]:
        await handlers.delete_ticket(ticket_core.unit_of_work(), ws, owner, ticket_id)
    await handlers.remove_member(ticket_core.unit_of_work(), ws, owner, agent.id)

    assert await rollup(ticket_core) == await actual_counts(ticket_core)
    counts = await handlers.count_tickets(
        ticket_core.unit_of_work(), owner, TicketFilter(workspace_id=ws, assignee="none")
    )
    unassigned = Counter(
        TicketStatus(s)
        for (_w, s, _p, a), n in (await actual_counts(ticket_core)).items()
        for _ in range(n)
        if a == NO_ASSIGNEE
    )
    assert counts.counts == {status: unassigned[status] for status in TicketStatus}
    assert counts.capped == frozenset()


async def test_a_query_does_not_wait_for_a_writer_and_sees_the_last_commit(
    ticket_core: TicketCore,
) -> None:
    created = await seeded(ticket_core)
    async with ticket_core.engine.connect() as writer:
        # A write transaction left open: on SQLite it holds the database's write lock.
        await writer.execute(
            tables.tickets.update()
            .where(tables.tickets.c.workspace_id == created.workspace.id)
            .values(subject="Uncommitted")
        )

        page = await asyncio.wait_for(
            handlers.list_tickets(
                ticket_core.reader(),
                created.owner.id,
                TicketFilter(workspace_id=created.workspace.id),
            ),
            timeout=10,  # waiting for the lock would take the 30 s busy timeout
        )
        await writer.rollback()

    assert sorted(row["subject"] for row in page.rows) == sorted(SUBJECTS)


async def test_search_counts_stop_at_the_cap_and_say_so(
    ticket_core: TicketCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.ticket_core.store import ticket_list

    monkeypatch.setattr(ticket_list, "COUNT_CAP", 3)
    created = await handlers.create_workspace(ticket_core.unit_of_work(), "A", "o@a.io")
    ws, owner = created.workspace.id, created.owner.id
    for n in range(6):
        ticket = await handlers.create_ticket(
            ticket_core.unit_of_work(),
            handlers.CreateTicket(
                workspace_id=ws, actor_id=owner, subject=f"Invoice {n}", description="-"
            ),
        )
        if n < 5:
            await handlers.update_ticket(
                ticket_core.unit_of_work(),
                handlers.UpdateTicket(
                    workspace_id=ws, actor_id=owner, ticket_id=ticket.id, changes={"status": "spam"}
                ),
            )

    page = await handlers.list_tickets(
        ticket_core.reader(), owner, TicketFilter(workspace_id=ws, query="invoice")
    )
    counts = await handlers.count_tickets(
        ticket_core.reader(), owner, TicketFilter(workspace_id=ws, query="invoice")
    )
    unsearched = await handlers.count_tickets(
        ticket_core.reader(), owner, TicketFilter(workspace_id=ws)
    )

    assert len(page.rows) == 1
    assert page.hidden_matches == {TicketStatus.SPAM: 3}
    assert page.hidden_matches_capped == {TicketStatus.SPAM}
    assert counts.counts[TicketStatus.SPAM] == 3
    assert counts.counts[TicketStatus.NEW] == 1
    assert counts.capped == {TicketStatus.SPAM}
    # Without a search the rollup answers exactly, whatever the number.
    assert unsearched.counts[TicketStatus.SPAM] == 5
    assert unsearched.capped == frozenset()
