"""activity-log's ordering of one subject's events, a whole batch at a time (pure domain)."""

from dataclasses import dataclass

from services.activity_log.domain.ordering import Verdict, order


@dataclass(frozen=True)
class Event:
    sequence: int
    name: str = ""


def sequences(events: list[Event]) -> list[int]:
    return [event.sequence for event in events]


def test_a_run_in_order_is_applied_whole() -> None:
    outcome = order(0, [], [Event(1), Event(2), Event(3)])
    assert sequences(outcome.applied) == [1, 2, 3]
    assert outcome.last_applied == 3
    assert outcome.held == []
    assert outcome.released == []


def test_an_event_after_a_gap_closed_in_the_same_batch_is_applied_and_never_held() -> None:
    three, one, two = Event(3), Event(1), Event(2)
    outcome = order(0, [], [three, one, two])
    assert sequences(outcome.applied) == [1, 2, 3]
    assert outcome.held == []


def test_the_missing_event_releases_those_held_before_and_the_run_after_them() -> None:
    waiting = [Event(7, "held"), Event(8, "held")]
    outcome = order(5, waiting, [Event(6), Event(9)])
    assert sequences(outcome.applied) == [6, 7, 8, 9]
    assert outcome.released == waiting
    assert outcome.last_applied == 9


def test_a_gap_that_stays_is_held_and_a_taken_number_is_a_conflict() -> None:
    forged, late = Event(2, "forged"), Event(5)
    outcome = order(2, [], [forged, Event(3), late])
    assert sequences(outcome.applied) == [3]
    assert outcome.held == [(forged, Verdict.CONFLICT), (late, Verdict.HOLD)]
    assert outcome.last_applied == 3


def test_nothing_applied_leaves_the_position_where_it_was() -> None:
    outcome = order(4, [Event(9)], [Event(7)])
    assert outcome.applied == []
    assert outcome.last_applied == 4
    assert outcome.released == []
