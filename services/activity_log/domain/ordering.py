"""A ticket's history is applied in `sequence` order, never out of it.

Producers number each subject's events 1, 2, 3, ... without gaps. An event that arrives after
a gap is held until the missing ones arrive; one whose number was already applied under
another event id is a conflict (a forged or replayed event), recorded and never applied.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, Protocol, TypeVar


class Verdict(Enum):
    APPLY = "apply"  # the next one expected
    HOLD = "hold"  # a gap before it: wait for the missing ones
    CONFLICT = "conflict"  # this number is already taken by another event


def place(last_applied: int, sequence: int) -> Verdict:
    if sequence == last_applied + 1:
        return Verdict.APPLY
    if sequence > last_applied + 1:
        return Verdict.HOLD
    return Verdict.CONFLICT


class Numbered(Protocol):
    @property
    def sequence(self) -> int: ...


Event = TypeVar("Event", bound=Numbered)


@dataclass
class SubjectOutcome(Generic[Event]):
    """What a run of one subject's events does to its history."""

    last_applied: int
    applied: list[Event] = field(default_factory=list)
    """To store, in sequence order: arrived ones and released held ones."""
    released: list[Event] = field(default_factory=list)
    """Of the events that were held before, those now applied."""
    held: list[tuple[Event, Verdict]] = field(default_factory=list)
    """Arrived ones to hold (`HOLD`: behind a gap; `CONFLICT`: their number is taken)."""


def order(
    last_applied: int, waiting: Sequence[Event], arrived: Iterable[Event]
) -> SubjectOutcome[Event]:
    """Apply `arrived` (one subject's events, in the order they came) after `last_applied`,
    each as if alone: the next one is applied and releases the `waiting` ones (held behind a
    gap before) and the arrived ones that now follow; the others are held."""
    outcome: SubjectOutcome[Event] = SubjectOutcome(last_applied)
    behind_gap: dict[int, list[tuple[Event, bool]]] = {}
    for event in waiting:
        behind_gap.setdefault(event.sequence, []).append((event, True))
    released_arrivals: set[int] = set()
    for event in arrived:
        verdict = place(outcome.last_applied, event.sequence)
        if verdict is Verdict.CONFLICT:
            outcome.held.append((event, verdict))
            continue
        if verdict is Verdict.HOLD:
            outcome.held.append((event, verdict))
            behind_gap.setdefault(event.sequence, []).append((event, False))
            continue
        outcome.applied.append(event)
        outcome.last_applied = event.sequence
        while queue := behind_gap.get(outcome.last_applied + 1):
            follower, was_waiting = queue.pop(0)
            outcome.applied.append(follower)
            outcome.last_applied = follower.sequence
            if was_waiting:
                outcome.released.append(follower)
            else:
                released_arrivals.add(id(follower))
    # An arrived event held behind a gap that this same run closed was never held.
    outcome.held = [(e, v) for e, v in outcome.held if id(e) not in released_arrivals]
    return outcome
