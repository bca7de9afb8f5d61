"""ticket-core runs what one poll of `ticket.commands.v1` returns as one batch, against the real
broker and both databases: a backlog mixing new commands, duplicates (within the batch and of
a command applied before), a conversation that already has a ticket, one whose ticket is
finished, a command the rules refuse and two commands for one conversation is answered
command by command, in order, with gap-free numbers; a command that does not validate in the
middle of a batch is dead-lettered alone."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.store.ticket_list import TicketFilter
from services.ticket_core.store.unit_of_work import UnitOfWork
from shared.contracts.envelope import EventEnvelope
from shared.contracts.tickets import TicketStatus
from shared.contracts.topics import TICKET_COMMANDS
from tests.integration.support import create_command, publish_on_one_partition, start_ticket_core
from tests.support.kafka_reader import body, header, read_until


@pytest.fixture
def core(unstarted_ticket_core: TicketCore) -> TicketCore:
    """Not started: each test publishes its backlog first, so that one poll returns it."""
    return unstarted_ticket_core


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many commands each call of the batch handler got."""
    sizes: list[int] = []
    run_batch = handlers.create_tickets_from_conversations

    async def counted(uow: UnitOfWork, commands: Sequence[EventEnvelope]) -> None:
        sizes.append(len(commands))
        await run_batch(uow, commands)

    monkeypatch.setattr(handlers, "create_tickets_from_conversations", counted)
    return sizes


async def answers(kafka: str, commands: Sequence[EventEnvelope]) -> dict[UUID, dict[str, Any]]:
    """The answer to each command, by command id (read once every command has one)."""
    wanted = {str(c.id).encode() for c in commands}
    records = await read_until(
        kafka, "ticket.command-results.v1", lambda r: r.key in wanted, count=len(wanted)
    )
    found: dict[UUID, dict[str, Any]] = {}
    for record in records:
        reply = body(record)
        found.setdefault(UUID(reply["data"]["command_id"]), reply)
    return found


async def test_a_mixed_batch_is_answered_command_by_command_in_order(
    kafka: str, core: TicketCore, producer: AIOKafkaProducer, batch_sizes: list[int]
) -> None:
    team = await handlers.create_workspace(core.unit_of_work(), "Acme", "o@acme.io")
    ws, owner = team.workspace.id, team.owner.id
    # Before the batch: conv-old got ticket #1 from a command, conv-done's ticket #2 is closed.
    earlier = create_command(ws, "conv-old")
    await handlers.create_ticket_from_conversation(core.unit_of_work(), earlier)
    done = await handlers.create_ticket(
        core.unit_of_work(), handlers.CreateTicket(ws, owner, "Done", "")
    )
    await handlers.link_conversation(core.unit_of_work(), ws, owner, done.id, "conv-done")
    await handlers.update_ticket(
        core.unit_of_work(), handlers.UpdateTicket(ws, owner, done.id, {"status": "closed"})
    )

    first = create_command(ws, "conv-a")
    refused = create_command(ws, "conv-r", subject="   ")
    unknown = create_command(uuid4(), "conv-u")
    again_old = create_command(ws, "conv-old")
    second = create_command(ws, "conv-b")
    takes_over = create_command(ws, "conv-done")
    same_1, same_2 = create_command(ws, "conv-c"), create_command(ws, "conv-c")
    batch = [first, refused, first, unknown, earlier, again_old, second, same_1]
    batch += [takes_over, same_2, second]
    await publish_on_one_partition(producer, TICKET_COMMANDS.name, batch)
    await start_ticket_core(core)

    distinct = [first, refused, unknown, again_old, second, same_1, takes_over, same_2]
    replies = await answers(kafka, distinct)

    outcome = {c.id: replies[c.id]["data"] for c in distinct}
    assert max(batch_sizes) > 1, "the backlog was never applied as a batch"
    # Numbers in offset order, gap-free: the refusals and answers take none.
    assert [outcome[c.id]["ticket_number"] for c in (first, second, same_1, takes_over)] == [
        3,
        4,
        5,
        6,
    ]
    assert {outcome[c.id]["outcome"] for c in (first, second, same_1, takes_over)} == {"created"}
    assert outcome[refused.id]["outcome"] == "rejected"
    assert outcome[refused.id]["reason"] == "subject_required"
    assert outcome[unknown.id]["reason"] == "unknown_workspace"
    assert outcome[again_old.id]["outcome"] == "already_linked"
    assert outcome[again_old.id]["ticket_number"] == 1
    assert outcome[same_2.id]["outcome"] == "already_linked"
    assert outcome[same_2.id]["ticket_id"] == outcome[same_1.id]["ticket_id"]
    for c in distinct:
        assert replies[c.id]["causation_id"] == str(c.id)
        assert replies[c.id]["correlation_id"] == c.correlation_id

    # The earlier command was not run again, and a duplicate in the batch not twice.
    every = TicketFilter(workspace_id=ws, statuses=frozenset(TicketStatus))
    page = await handlers.list_tickets(core.unit_of_work(), owner, every)
    assert sorted(row["number"] for row in page.rows) == [1, 2, 3, 4, 5, 6]
    old_done = await handlers.get_ticket(core.unit_of_work(), ws, owner, done.id)
    assert old_done.conversation_ids == []
    new_done = UUID(outcome[takes_over.id]["ticket_id"])
    assert (
        await handlers.get_ticket(core.unit_of_work(), ws, owner, new_done)
    ).conversation_ids == ["conv-done"]
    counts = await handlers.count_tickets(core.unit_of_work(), owner, every)
    assert sum(counts.counts.values()) == 6
    # The numbers the batch took and did not use were given back.
    next_one = await handlers.create_ticket(
        core.unit_of_work(), handlers.CreateTicket(ws, owner, "Next", "")
    )
    assert next_one.number == 7

    # Each ticket's events carry the command that caused them.
    [created] = await read_until(
        kafka, "ticket.events.v1", lambda r: r.key == str(new_done).encode()
    )
    [unlinked] = await read_until(
        kafka,
        "ticket.events.v1",
        lambda r: (
            r.key == str(done.id).encode()
            and header(r, "event-type") == "ticket.conversation_unlinked"
        ),
    )
    for event in (created, unlinked):
        assert body(event)["causation_id"] == str(takes_over.id)
        assert body(event)["correlation_id"] == takes_over.correlation_id


async def test_a_command_that_does_not_validate_mid_batch_is_dead_lettered_alone(
    kafka: str, core: TicketCore, producer: AIOKafkaProducer
) -> None:
    team = await handlers.create_workspace(core.unit_of_work(), "Acme", "o@acme.io")
    ws = team.workspace.id
    key = f"conv-{uuid4()}"  # the dead-letter topic is shared with other tests
    before, after = create_command(ws, "conv-1"), create_command(ws, "conv-2")
    too_long = create_command(ws, key, subject="x" * 201)
    await publish_on_one_partition(producer, TICKET_COMMANDS.name, [before, too_long, after])
    await start_ticket_core(core)

    replies = await answers(kafka, [before, after])
    [dead] = await read_until(kafka, "ticket.commands.v1.dlq", lambda r: r.key == key.encode())

    assert [replies[c.id]["data"]["ticket_number"] for c in (before, after)] == [1, 2]
    assert body(dead)["id"] == str(too_long.id)
    assert "subject" in (header(dead, "dead-letter-reason") or "")
