"""activity-log applies each ticket's events in sequence order, on SQLite and PostgreSQL: an
event after a gap waits, is reported, and lands as soon as the missing one arrives; an event
whose number is taken is held as a conflict, never stored over the real one."""

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from services.activity_log import handlers
from services.activity_log.bootstrap import ActivityLog
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.settings import ActivityLogSettings
from shared.contracts.envelope import EventEnvelope
from tests.integration.support import ticket_event

WORKSPACE = uuid4()


@pytest.fixture
async def activity_log(activity_log_url: str) -> AsyncIterator[ActivityLog]:
    service = bootstrap_activity_log(ActivityLogSettings(database_url=activity_log_url))
    yield service
    await service.engine.dispose()


def event(ticket_id: str, sequence: int) -> EventEnvelope:
    return ticket_event(WORKSPACE, ticket_id, sequence)


async def sequences(service: ActivityLog, ticket_id: str) -> list[int]:
    history = await handlers.ticket_history(service.unit_of_work(), WORKSPACE, ticket_id)
    return [entry.sequence for entry in history]


async def test_an_event_after_a_gap_waits_for_the_missing_one(activity_log: ActivityLog) -> None:
    ticket = str(uuid4())
    for sequence in (1, 3, 4):
        await handlers.record_event(activity_log.unit_of_work(), event(ticket, sequence))

    assert await sequences(activity_log, ticket) == [1]
    [held] = await handlers.held_back(activity_log.unit_of_work())
    assert (held["subject"], held["reason"], held["held"], held["first_held"]) == (
        ticket,
        "gap",
        2,
        3,
    )
    assert held["last_sequence"] == 1

    await handlers.record_event(activity_log.unit_of_work(), event(ticket, 2))

    assert await sequences(activity_log, ticket) == [1, 2, 3, 4]
    assert await handlers.held_back(activity_log.unit_of_work()) == []


async def test_an_event_reusing_a_taken_sequence_is_held_as_a_conflict(
    activity_log: ActivityLog,
) -> None:
    ticket = str(uuid4())
    real = event(ticket, 1)
    forged = event(ticket, 1)  # another id, the same place in the history
    assert forged.id != real.id

    for each in (real, forged, real):
        await handlers.record_event(activity_log.unit_of_work(), each)

    history = await handlers.ticket_history(activity_log.unit_of_work(), WORKSPACE, ticket)
    assert [entry.event_id for entry in history] == [real.id]
    [held] = await handlers.held_back(activity_log.unit_of_work())
    assert (held["reason"], held["first_held"]) == ("conflict", 1)


async def test_subjects_are_ordered_independently(activity_log: ActivityLog) -> None:
    first, second = str(uuid4()), str(uuid4())
    await handlers.record_event(activity_log.unit_of_work(), event(first, 2))
    await handlers.record_event(activity_log.unit_of_work(), event(second, 1))

    assert await sequences(activity_log, second) == [1]
    assert await sequences(activity_log, first) == []
