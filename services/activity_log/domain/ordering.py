"""A ticket's history is applied in `sequence` order, never out of it.

Producers number each subject's events 1, 2, 3, ... without gaps. An event that arrives after
a gap is held until the missing ones arrive; one whose number was already applied under
another event id is a conflict (a forged or replayed event), recorded and never applied.
"""

from enum import Enum


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
