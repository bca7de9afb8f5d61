"""Group commit (`shared.group_commit`) without a database: which calls go together, and that
each caller gets its own answer."""

import asyncio
from collections.abc import Sequence

import pytest

from shared.group_commit import GroupCommit


class Refused(Exception):
    pass


class Writes:
    """A writer that records each group it is given and answers each call: even numbers
    doubled, odd ones refused; a group holding 13 fails as a whole."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    async def __call__(self, calls: Sequence[int]) -> list[int | Exception]:
        self.groups.append(list(calls))
        await asyncio.sleep(0)  # a transaction takes a while; others arrive meanwhile
        if 13 in calls:
            raise RuntimeError("the group's transaction failed")
        return [call * 2 if call % 2 == 0 else Refused(str(call)) for call in calls]


async def test_a_lone_call_is_written_at_once_and_those_arriving_meanwhile_go_together() -> None:
    writes = Writes()
    group_commit = GroupCommit("test", writes, max_size=3)

    assert await group_commit.submit(2) == 4
    answers = await asyncio.gather(
        *(group_commit.submit(n) for n in (4, 5, 6, 8, 10)), return_exceptions=True
    )

    # All five arrived before the writer ran: together, at most max_size per transaction.
    assert writes.groups == [[2], [4, 5, 6], [8, 10]]
    assert answers[0] == 8
    assert isinstance(answers[1], Refused)  # its own refusal, nobody else's
    assert answers[2:] == [12, 16, 20]


async def test_a_failed_group_is_written_again_one_call_at_a_time() -> None:
    writes = Writes()
    group_commit = GroupCommit("test", writes, max_size=10)

    answers = await asyncio.gather(
        *(group_commit.submit(n) for n in (2, 4, 13, 6)), return_exceptions=True
    )

    assert writes.groups == [[2, 4, 13, 6], [2], [4], [13], [6]]
    assert answers[0] == 4
    assert answers[1] == 8
    assert isinstance(answers[2], RuntimeError)  # only the call that fails its transaction
    assert answers[3] == 12


async def test_a_caller_that_goes_away_does_not_stop_the_others() -> None:
    writes = Writes()
    group_commit = GroupCommit("test", writes, max_size=10)
    first = asyncio.create_task(group_commit.submit(2))
    leaving = asyncio.create_task(group_commit.submit(4))
    staying = asyncio.create_task(group_commit.submit(6))
    await asyncio.sleep(0)

    leaving.cancel()

    assert await first == 4
    assert await staying == 12
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert writes.groups == [[2, 4, 6]]  # written all the same: it may be stored already
