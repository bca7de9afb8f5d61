"""intake takes what one poll of `widget.ticket-requests.v1` returns as one batch, against the
real broker and both databases: each request decided as if it had come alone and in order
(its key, its assistant's rules, the rate windows counting the batch's earlier ones), the same
request id twice one ticket, each refusal an answer for its request with its reason, counted
and sampled, and never a failure of the others; a record with a header that is not text is
dead-lettered alone."""

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from services.intake import handlers
from services.intake.bootstrap import Intake
from services.intake.bootstrap import bootstrap as bootstrap_intake
from services.intake.settings import IntakeSettings
from services.intake.store import tables
from services.intake.store.unit_of_work import UnitOfWork
from shared.broker import stop_broker
from shared.contracts.topics import WIDGET_TICKET_REQUESTS
from shared.contracts.widget import (
    WIDGET_KEY_HEADER,
    AssistantTicketSettings,
    RejectionReason,
    RequestStatus,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)
from tests.integration.support import configure_assistant
from tests.support.kafka_reader import header, read_until
from tests.support.waiting import eventually

PER_CONVERSATION = 2
PARTITION = 0


@pytest.fixture
async def intake(kafka: str, intake_url: str, fresh_group: str) -> AsyncIterator[Intake]:
    """Not started: each test publishes its batch first, so that one poll returns it."""
    service = bootstrap_intake(
        IntakeSettings(
            database_url=intake_url,
            kafka_bootstrap_servers=kafka,
            consumer_group=fresh_group,
            rate_limit_per_conversation=PER_CONVERSATION,
        )
    )
    yield service
    await stop_broker(service.broker)
    await service.engine.dispose()
    await service.read_engine.dispose()


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[WidgetRequestAnswer]]:
    """The answers of each call of the batch handler, one list per batch."""
    answered: list[list[WidgetRequestAnswer]] = []
    receive_requests = handlers.receive_requests

    async def recorded(
        uow: UnitOfWork, calls: Sequence[tuple[WidgetTicketRequest, str | None]], *args: Any
    ) -> list[WidgetRequestAnswer]:
        answers = await receive_requests(uow, calls, *args)
        answered.append(answers)
        return answers

    monkeypatch.setattr(handlers, "receive_requests", recorded)
    return answered


async def configure(intake: Intake, assistant: str, *, enabled: bool = True) -> str:
    _, key = await configure_assistant(
        intake,
        assistant,
        AssistantTicketSettings(ticket_creation_enabled=enabled, require_contact_info=False),
    )
    return key


def body(request_id: str, assistant: str, conversation: str) -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "assistant_id": assistant,
            "conversation": {
                "id": conversation,
                "messages": [
                    {
                        "role": "visitor",
                        "text": f"Help with {request_id}",
                        "sent_at": "2026-11-25T09:00:00+00:00",
                    }
                ],
            },
        }
    ).encode()


Record = tuple[bytes, list[tuple[str, bytes]]]


async def publish_on_one_partition(producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
    """In this order on one partition, so that one poll returns them in this order."""
    for value, headers in records:
        await producer.send(
            WIDGET_TICKET_REQUESTS.name, value, key=b"batch", headers=headers, partition=PARTITION
        )
    await producer.flush()


async def stored(intake: Intake, table: Any, **where: str) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with intake.session_factory() as session:
        return int(await session.scalar(query) or 0)


async def samples(intake: Intake, assistant: str) -> list[Any]:
    async with intake.unit_of_work() as uow:
        return await uow.refusals.samples(assistant, 10)


async def commands(intake: Intake) -> list[str]:
    """The request ids intake asked ticket-core a ticket for, in order."""
    async with intake.session_factory() as session:
        payloads = await session.scalars(
            select(tables.outbox.c.payload)
            .where(tables.outbox.c.topic == "ticket.commands.v1")
            .order_by(tables.outbox.c.position)
        )
        return [json.loads(payload)["correlation_id"] for payload in payloads]


async def test_a_batch_is_decided_request_by_request_in_order_and_refusals_fail_no_other(
    intake: Intake, producer: AIOKafkaProducer, batches: list[list[WidgetRequestAnswer]]
) -> None:
    key = await configure(intake, "asst-open")
    closed_key = await configure(intake, "asst-closed", enabled=False)
    with_key = [(WIDGET_KEY_HEADER, key.encode())]
    run = uuid4().hex[:8]
    ids = {name: f"{name}-{run}" for name in ("ok", "again", "nokey", "wrongkey", "unknown")}
    ids |= {f"busy{n}": f"busy{n}-{run}" for n in range(3)}
    ids |= {"closed": f"closed-{run}"}
    records: list[Record] = [
        (body(ids["ok"], "asst-open", "conv-a"), with_key),
        (body(ids["nokey"], "asst-open", "conv-b"), []),
        (body(ids["wrongkey"], "asst-open", "conv-b"), [(WIDGET_KEY_HEADER, b"wk_not-it")]),
        # The same id twice: one ticket, the same answer.
        (body(ids["ok"], "asst-open", "conv-a"), with_key),
        (body(ids["unknown"], "asst-nobody", "conv-c"), with_key),
        # Three on one conversation that takes two per window: the third is refused.
        *((body(ids[f"busy{n}"], "asst-open", "conv-busy"), with_key) for n in range(3)),
        (body(ids["closed"], "asst-closed", "conv-d"), [(WIDGET_KEY_HEADER, closed_key.encode())]),
        (body(ids["again"], "asst-open", "conv-e"), with_key),
    ]
    await publish_on_one_partition(producer, records)
    await intake.broker.start()

    async def all_answered() -> bool:
        return sum(len(answers) for answers in batches) == len(records)

    await eventually(all_answered, what="every request of the batch answered")
    assert max(len(answers) for answers in batches) > 1, "the requests never came as a batch"
    answers = [answer for each in batches for answer in each]
    decided = [(a.request_id, a.status, a.reason) for a in answers]
    pending, rejected = RequestStatus.PENDING, RequestStatus.REJECTED
    assert decided == [
        (ids["ok"], pending, None),
        (ids["nokey"], rejected, RejectionReason.INVALID_WIDGET_KEY),
        (ids["wrongkey"], rejected, RejectionReason.INVALID_WIDGET_KEY),
        (ids["ok"], pending, None),
        (ids["unknown"], rejected, RejectionReason.UNKNOWN_ASSISTANT),
        (ids["busy0"], pending, None),
        (ids["busy1"], pending, None),
        (ids["busy2"], rejected, RejectionReason.RATE_LIMITED),
        (ids["closed"], rejected, RejectionReason.TICKET_CREATION_DISABLED),
        (ids["again"], pending, None),
    ]
    # One command per accepted request, in offset order; nothing of a refused one is stored.
    accepted = [ids[name] for name in ("ok", "busy0", "busy1", "again")]
    assert await commands(intake) == accepted
    assert await stored(intake, tables.ticket_requests) == len(accepted)
    assert await stored(intake, tables.conversations) == 3
    assert await stored(intake, tables.conversation_messages, conversation_id="conv-busy") == 2
    assert await stored(intake, tables.conversation_messages, conversation_id="conv-b") == 0

    # Each refusal counted and sampled as a single request's is.
    assert await handlers.flush_refusals(intake.unit_of_work, intake.guard, intake.limits) == 5
    sampled = {
        (sample.request_id, sample.reason)
        for assistant in ("asst-open", "asst-closed")
        for sample in await samples(intake, assistant)
    }
    assert sampled == {
        (ids["nokey"], RejectionReason.INVALID_WIDGET_KEY),
        (ids["wrongkey"], RejectionReason.INVALID_WIDGET_KEY),
        (ids["busy2"], RejectionReason.RATE_LIMITED),
        (ids["closed"], RejectionReason.TICKET_CREATION_DISABLED),
    }


async def test_a_header_that_is_not_text_is_dead_lettered_alone_and_its_batch_stored(
    kafka: str,
    intake: Intake,
    producer: AIOKafkaProducer,
    batches: list[list[WidgetRequestAnswer]],
) -> None:
    key = [(WIDGET_KEY_HEADER, (await configure(intake, "asst-1")).encode())]
    run = uuid4().hex[:8]
    before, bad, after = (f"{name}-{run}" for name in ("before", "bad", "after"))
    await publish_on_one_partition(
        producer,
        [
            (body(before, "asst-1", "conv-1"), key),
            (body(bad, "asst-1", "conv-2"), [(WIDGET_KEY_HEADER, b"\xff\xfe not text")]),
            (body(after, "asst-1", "conv-3"), key),
        ],
    )
    await intake.broker.start()

    [dead] = await read_until(
        kafka, WIDGET_TICKET_REQUESTS.dead_letter, lambda r: bad.encode() in (r.value or b"")
    )
    reason = header(dead, "dead-letter-reason") or ""
    assert f"header {WIDGET_KEY_HEADER!r} is not UTF-8 text" in reason

    async def both_others_stored() -> bool:
        return await commands(intake) == [before, after]

    await eventually(both_others_stored, what="the two good requests' commands")
    assert [a.request_id for each in batches for a in each] == [before, after]
