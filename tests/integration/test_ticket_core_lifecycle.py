"""ticket-core's rules where they meet the database, on SQLite and PostgreSQL: concurrent
writers, idempotent creates, exclusive conversation links, the last owner, and what reaches
the outbox."""

import asyncio
import json
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.domain.errors import (
    ConcurrentUpdate,
    Conflict,
    NotFound,
    StaleVersion,
)
from services.ticket_core.store import tables
from services.ticket_core.store.ticket_list import TicketFilter
from shared.contracts.tickets import TicketStatus


async def events_of(core: TicketCore, subject: UUID) -> list[dict[str, Any]]:
    async with core.session_factory() as session:
        payloads = (
            await session.scalars(
                select(tables.outbox.c.payload)
                .where(tables.outbox.c.message_key == str(subject))
                .order_by(tables.outbox.c.position)
            )
        ).all()
    return [json.loads(payload) for payload in payloads]


async def setup(core: TicketCore) -> tuple[handlers.NewWorkspace, UUID]:
    team = await handlers.create_workspace(core.unit_of_work(), "Acme", "owner@acme.io")
    ticket = await handlers.create_ticket(
        core.unit_of_work(),
        handlers.CreateTicket(team.workspace.id, team.owner.id, "Checkout fails", ""),
    )
    return team, ticket.id


def patch(
    team: handlers.NewWorkspace, ticket_id: UUID, version: int | None = None, **changes: Any
) -> handlers.UpdateTicket:
    return handlers.UpdateTicket(
        workspace_id=team.workspace.id,
        actor_id=team.owner.id,
        ticket_id=ticket_id,
        changes=changes,
        expected_version=version,
    )


async def test_two_concurrent_updates_of_one_version_cannot_both_win(
    ticket_core: TicketCore,
) -> None:
    team, ticket_id = await setup(ticket_core)

    results = await asyncio.gather(
        handlers.update_ticket(
            ticket_core.unit_of_work(), patch(team, ticket_id, 1, priority="high")
        ),
        handlers.update_ticket(
            ticket_core.unit_of_work(), patch(team, ticket_id, 1, priority="low")
        ),
        return_exceptions=True,
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], StaleVersion | ConcurrentUpdate)
    stored = await handlers.get_ticket(
        ticket_core.unit_of_work(), team.workspace.id, team.owner.id, ticket_id
    )
    assert stored.version == 2
    assert stored.priority == winners[0].priority
    changes = [e for e in await events_of(ticket_core, ticket_id) if e["type"] != "ticket.created"]
    assert len(changes) == 1
    assert changes[0]["sequence"] == 2


async def test_many_concurrent_writers_lose_no_update_and_leave_no_sequence_gap(
    ticket_core: TicketCore,
) -> None:
    team, ticket_id = await setup(ticket_core)

    async def rename(i: int) -> bool:
        try:
            await handlers.update_ticket(
                ticket_core.unit_of_work(), patch(team, ticket_id, subject=f"Subject {i}")
            )
            return True
        except ConcurrentUpdate:
            return False

    won = sum(await asyncio.gather(*(rename(i) for i in range(12))))

    stored = await handlers.get_ticket(
        ticket_core.unit_of_work(), team.workspace.id, team.owner.id, ticket_id
    )
    events = await events_of(ticket_core, ticket_id)
    assert won >= 1
    assert stored.version == 1 + won
    assert [e["sequence"] for e in events] == list(range(1, won + 2))


async def test_a_stale_if_match_changes_nothing(ticket_core: TicketCore) -> None:
    team, ticket_id = await setup(ticket_core)
    await handlers.update_ticket(
        ticket_core.unit_of_work(), patch(team, ticket_id, 1, priority="high")
    )

    with pytest.raises(StaleVersion):
        await handlers.update_ticket(
            ticket_core.unit_of_work(), patch(team, ticket_id, 1, subject="Overwritten")
        )

    stored = await handlers.get_ticket(
        ticket_core.unit_of_work(), team.workspace.id, team.owner.id, ticket_id
    )
    assert (stored.subject, stored.version) == ("Checkout fails", 2)


async def test_a_write_of_the_same_values_publishes_nothing(ticket_core: TicketCore) -> None:
    team, ticket_id = await setup(ticket_core)

    ticket = await handlers.update_ticket(
        ticket_core.unit_of_work(),
        patch(team, ticket_id, subject="Checkout fails", priority="normal", status="new"),
    )

    assert ticket.version == 1
    assert [e["type"] for e in await events_of(ticket_core, ticket_id)] == ["ticket.created"]


async def test_concurrent_creates_with_one_idempotency_key_make_one_ticket(
    ticket_core: TicketCore,
) -> None:
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    command = handlers.CreateTicket(
        team.workspace.id, team.owner.id, "Once", "", idempotency_key="retry-1"
    )

    answers = await asyncio.gather(
        *(handlers.create_ticket_once(ticket_core.unit_of_work(), command) for _ in range(5))
    )

    assert len({answer["id"] for answer in answers}) == 1
    page = await handlers.list_tickets(
        ticket_core.unit_of_work(), team.owner.id, TicketFilter(workspace_id=team.workspace.id)
    )
    assert len(page.rows) == 1


async def test_a_reused_idempotency_key_with_another_body_is_refused(
    ticket_core: TicketCore,
) -> None:
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    first = handlers.CreateTicket(team.workspace.id, team.owner.id, "A", "", idempotency_key="k")
    await handlers.create_ticket_once(ticket_core.unit_of_work(), first)

    with pytest.raises(Conflict) as refused:
        await handlers.create_ticket_once(
            ticket_core.unit_of_work(),
            handlers.CreateTicket(team.workspace.id, team.owner.id, "B", "", idempotency_key="k"),
        )
    assert refused.value.code == "idempotency_key_reused"


async def test_a_retry_after_its_ticket_was_deleted_is_refused_and_creates_nothing(
    ticket_core: TicketCore,
) -> None:
    """The first answer named a ticket that is gone: a retry says so instead of answering a
    ticket that no longer exists (and makes no second one)."""
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    create = handlers.CreateTicket(team.workspace.id, team.owner.id, "A", "", idempotency_key="k")
    created = await handlers.create_ticket_once(ticket_core.unit_of_work(), create)
    await handlers.delete_ticket(
        ticket_core.unit_of_work(), team.workspace.id, team.owner.id, UUID(str(created["id"]))
    )

    with pytest.raises(Conflict) as refused:
        await handlers.create_ticket_once(ticket_core.unit_of_work(), create)

    assert refused.value.code == "created_ticket_deleted"
    assert f"#{created['number']}" in refused.value.detail
    page = await handlers.list_tickets(
        ticket_core.unit_of_work(), team.owner.id, TicketFilter(workspace_id=team.workspace.id)
    )
    assert page.rows == []


async def test_a_conversation_links_to_one_ticket_at_a_time_even_when_links_race(
    ticket_core: TicketCore,
) -> None:
    team, first = await setup(ticket_core)
    second = (
        await handlers.create_ticket(
            ticket_core.unit_of_work(),
            handlers.CreateTicket(team.workspace.id, team.owner.id, "Second", ""),
        )
    ).id

    results = await asyncio.gather(
        *(
            handlers.link_conversation(
                ticket_core.unit_of_work(), team.workspace.id, team.owner.id, ticket, "conv-42"
            )
            for ticket in (first, second)
        ),
        return_exceptions=True,
    )

    assert sum(not isinstance(r, BaseException) for r in results) == 1
    [conflict] = [r for r in results if isinstance(r, BaseException)]
    assert isinstance(conflict, Conflict)
    assert conflict.code == "conversation_already_linked"


async def test_unlinking_frees_the_conversation_and_deleting_frees_its_links(
    ticket_core: TicketCore,
) -> None:
    team, first = await setup(ticket_core)
    ws, owner = team.workspace.id, team.owner.id
    second = (
        await handlers.create_ticket(
            ticket_core.unit_of_work(), handlers.CreateTicket(ws, owner, "Second", "")
        )
    ).id
    await handlers.link_conversation(ticket_core.unit_of_work(), ws, owner, first, "conv-1")
    await handlers.unlink_conversation(ticket_core.unit_of_work(), ws, owner, first, "conv-1")
    linked = await handlers.link_conversation(
        ticket_core.unit_of_work(), ws, owner, second, "conv-1"
    )
    assert linked.conversation_ids == ["conv-1"]

    await handlers.delete_ticket(ticket_core.unit_of_work(), ws, owner, second)

    with pytest.raises(NotFound):
        await handlers.get_ticket(ticket_core.unit_of_work(), ws, owner, second)
    again = await handlers.link_conversation(ticket_core.unit_of_work(), ws, owner, first, "conv-1")
    assert again.conversation_ids == ["conv-1"]
    assert [e["type"] for e in await events_of(ticket_core, second)][-1] == "ticket.deleted"


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    ticket_core: TicketCore,
) -> None:
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "a@acme.io")
    ws = team.workspace.id
    second = await handlers.add_member(
        ticket_core.unit_of_work(), ws, team.owner.id, "b@acme.io", "owner"
    )

    results = await asyncio.gather(
        handlers.change_member_role(
            ticket_core.unit_of_work(), ws, team.owner.id, second.id, "admin"
        ),
        handlers.change_member_role(
            ticket_core.unit_of_work(), ws, second.id, team.owner.id, "admin"
        ),
        return_exceptions=True,
    )

    members = await handlers.list_members(ticket_core.unit_of_work(), ws, team.owner.id)
    assert [m.role.value for m in members].count("owner") == 1
    assert sum(isinstance(r, BaseException) for r in results) == 1


async def test_removing_a_member_unassigns_their_tickets(ticket_core: TicketCore) -> None:
    team, ticket_id = await setup(ticket_core)
    ws = team.workspace.id
    agent = await handlers.add_member(
        ticket_core.unit_of_work(), ws, team.owner.id, "c@acme.io", "member"
    )
    await handlers.update_ticket(
        ticket_core.unit_of_work(), patch(team, ticket_id, assignee_id=agent.id)
    )

    await handlers.remove_member(ticket_core.unit_of_work(), ws, team.owner.id, agent.id)

    stored = await handlers.get_ticket(ticket_core.unit_of_work(), ws, team.owner.id, ticket_id)
    assert stored.assignee_id is None
    assert [e["type"] for e in await events_of(ticket_core, ticket_id)][-1] == "ticket.unassigned"
    assert [e["type"] for e in await events_of(ticket_core, agent.id)] == [
        "member.added",
        "member.removed",
    ]


async def test_the_list_hides_closed_and_spam_and_says_so(ticket_core: TicketCore) -> None:
    team, ticket_id = await setup(ticket_core)
    ws, owner = team.workspace.id, team.owner.id
    await handlers.update_ticket(
        ticket_core.unit_of_work(), patch(team, ticket_id, status="closed")
    )
    await handlers.create_ticket(
        ticket_core.unit_of_work(), handlers.CreateTicket(ws, owner, "100% off_sale", "")
    )

    default = await handlers.list_tickets(
        ticket_core.unit_of_work(), owner, TicketFilter(workspace_id=ws, query="CHECKOUT")
    )
    closed = await handlers.list_tickets(
        ticket_core.unit_of_work(),
        owner,
        TicketFilter(workspace_id=ws, query="checkout", statuses=frozenset({TicketStatus.CLOSED})),
    )
    literal = await handlers.list_tickets(
        ticket_core.unit_of_work(), owner, TicketFilter(workspace_id=ws, query="0% off_")
    )
    wildcard = await handlers.list_tickets(
        ticket_core.unit_of_work(), owner, TicketFilter(workspace_id=ws, query="%")
    )

    assert default.rows == []
    assert default.hidden_matches == {TicketStatus.CLOSED: 1}
    assert [r["id"] for r in closed.rows] == [ticket_id]
    assert [r["subject"] for r in literal.rows] == ["100% off_sale"]
    assert [r["subject"] for r in wildcard.rows] == ["100% off_sale"]


async def test_pages_follow_each_other_without_repeats_or_gaps(ticket_core: TicketCore) -> None:
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    ws, owner = team.workspace.id, team.owner.id
    for i in range(7):
        await handlers.create_ticket(
            ticket_core.unit_of_work(), handlers.CreateTicket(ws, owner, f"T{i}", "")
        )
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await handlers.list_tickets(
            ticket_core.unit_of_work(), owner, TicketFilter(workspace_id=ws, cursor=cursor, limit=3)
        )
        seen.extend(str(r["id"]) for r in page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 7
