"""Creates that arrive together are made in one transaction (group commit), on both databases:
each caller still gets its own ticket or its own refusal, numbers stay gap-free, and a
transaction that fails for one of them (two retries with one Idempotency-Key) is made again
one create at a time, so that the others are not failed with it."""

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import pytest
import structlog
from sqlalchemy.exc import IntegrityError

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.domain.errors import InvalidInput, UnknownMember
from services.ticket_core.domain.tickets import Ticket
from services.ticket_core.store.ticket_list import TicketFilter
from services.ticket_core.store.unit_of_work import UnitOfWork


@pytest.fixture
def transaction_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many creates each transaction of the group commit made."""
    sizes: list[int] = []
    create_tickets = handlers._create_tickets

    async def counted(uow: UnitOfWork, commands: Sequence[Any]) -> list[Any]:
        sizes.append(len(commands))
        return await create_tickets(uow, commands)

    monkeypatch.setattr(handlers, "_create_tickets", counted)
    return sizes


async def test_concurrent_creates_share_a_transaction_and_each_gets_its_own_answer(
    ticket_core: TicketCore, transaction_sizes: list[int]
) -> None:
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    ws, owner = team.workspace.id, team.owner.id

    def create(subject: str, actor: Any = owner) -> Any:
        command = handlers.CreateTicket(ws, actor, subject, "")
        return handlers.create_ticket(ticket_core.unit_of_work(), command)

    answers = await asyncio.gather(
        *(create(f"T{i}") for i in range(5)),
        create("Stranger", actor=uuid4()),
        create("   "),
        *(create(f"T{i}") for i in range(5, 10)),
        return_exceptions=True,
    )

    tickets = [a for a in answers if isinstance(a, Ticket)]
    assert [t.subject for t in tickets] == [f"T{i}" for i in range(10)]
    assert [t.number for t in tickets] == list(range(1, 11))  # in arrival order, no gap
    assert isinstance(answers[5], UnknownMember)
    assert isinstance(answers[6], InvalidInput)
    assert transaction_sizes == [12]  # every create arrived while none was running
    page = await handlers.list_tickets(ticket_core.unit_of_work(), owner, TicketFilter(ws))
    assert len(page.rows) == 10
    counts = await handlers.count_tickets(ticket_core.unit_of_work(), owner, TicketFilter(ws))
    assert sum(counts.counts.values()) == 10
    after = await create("After")
    assert after.number == 11
    assert transaction_sizes == [12, 1]


async def test_a_failed_group_is_made_again_one_create_at_a_time(
    ticket_core: TicketCore, transaction_sizes: list[int]
) -> None:
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    ws, owner = team.workspace.id, team.owner.id

    def create(subject: str, key: str) -> Any:
        command = handlers.CreateTicket(ws, owner, subject, "", idempotency_key=key)
        return handlers.create_ticket(ticket_core.unit_of_work(), command)

    # Two creates with one Idempotency-Key among others, all arriving together: the group's
    # insert of the keys fails, and each create is then made alone; only the second of the
    # two fails (create_ticket_once answers it with the first one's ticket).
    with structlog.testing.capture_logs() as logs:
        answers = await asyncio.gather(
            create("Other 1", "key-1"),
            create("Retried", "key-2"),
            create("Retried", "key-2"),
            create("Other 2", "key-3"),
            return_exceptions=True,
        )

    assert transaction_sizes == [4, 1, 1, 1, 1]
    assert any(e["event"] == "group_commit_failed_writing_one_at_a_time" for e in logs)
    assert isinstance(answers[2], IntegrityError)
    tickets = [a for a in answers if isinstance(a, Ticket)]
    assert [(t.subject, t.number) for t in tickets] == [
        ("Other 1", 1),
        ("Retried", 2),
        ("Other 2", 3),
    ]
    page = await handlers.list_tickets(ticket_core.unit_of_work(), owner, TicketFilter(ws))
    assert len(page.rows) == 3
