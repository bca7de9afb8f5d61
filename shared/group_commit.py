"""Group commit: calls that arrive while a transaction of their kind is being written wait,
and the next transaction takes them all, so that concurrent writers cost about one
transaction instead of one each (and, on SQLite, do not queue one by one for its one writer).

Nothing waits for a timer: a lone call is written at once. Each caller gets its own result or
its own error. Should a group fail as a whole, its calls are written again one at a time, so
that only the failing call's caller gets the failure (as the batch consumers do with a batch,
`shared.broker.BatchConsumer`). What a group writes, and how, is the service's own: `write`.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

Call = TypeVar("Call")
Result = TypeVar("Result")

# `write(calls)`: one result per call, in order; an exception in the list is that call's own
# answer (a refusal), raised to its caller alone. Raising fails the whole group.
GroupWriter = Callable[[Sequence[Call]], Awaitable[Sequence[Result | Exception]]]


class GroupCommit(Generic[Call, Result]):
    def __init__(self, name: str, write: GroupWriter[Call, Result], *, max_size: int) -> None:
        self._name = name
        self._write = write
        self._max_size = max_size
        self._waiting: list[tuple[Call, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, call: Call) -> Result:
        """`call`'s result, once the group it went in is committed."""
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((call, answer))
        if self._writer is None or self._writer.done():
            # A task of its own: a caller that goes away must not stop the others' commit.
            self._writer = asyncio.create_task(self._write_groups())
        return await answer

    async def _write_groups(self) -> None:
        group: list[tuple[Call, asyncio.Future[Result]]] = []
        try:
            while self._waiting:
                group = self._waiting[: self._max_size]
                del self._waiting[: len(group)]
                await self._write_group(group)
        finally:  # cancelled (the process stops): nobody waits for ever
            for _, answer in (*group, *self._waiting):
                answer.cancel()
            self._waiting.clear()

    async def _write_group(self, group: list[tuple[Call, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([call for call, _ in group])
        except Exception as error:
            if len(group) == 1:
                _settle(group[0][1], error)
                return
            log.warning(
                "group_commit_failed_writing_one_at_a_time",
                group=self._name,
                calls=len(group),
                error=f"{type(error).__name__}: {error}".splitlines()[0][:300],
            )
            for call, answer in group:
                try:
                    [result] = await self._write([call])
                except Exception as one_error:
                    result = one_error
                _settle(answer, result)
            return
        for (_, answer), result in zip(group, results, strict=True):
            _settle(answer, result)


def _settle(answer: "asyncio.Future[Result]", result: "Result | Exception") -> None:
    if answer.done():  # its caller went away
        return
    if isinstance(result, Exception):
        answer.set_exception(result)
    else:
        answer.set_result(result)
