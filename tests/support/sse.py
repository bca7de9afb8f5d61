"""A Server-Sent Events client as a dashboard uses one: it reads `id`/`event`/`data` frames
off a streaming HTTP response, ignoring comment lines (heartbeats)."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    id: str | None
    event: str
    data: str

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class EventStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._frames: asyncio.Queue[ServerSentEvent] = asyncio.Queue()
        # Read in the background, so that a timed-out wait never cuts a frame in half.
        self._reader = asyncio.create_task(self._fill(response))

    async def _fill(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            return
        async for frame in self._read(response.aiter_lines()):
            await self._frames.put(frame)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._reader

    @staticmethod
    async def _read(lines: AsyncIterator[str]) -> AsyncIterator[ServerSentEvent]:
        fields: dict[str, list[str]] = {}
        async for line in lines:
            if line == "":
                if "data" in fields or "event" in fields:
                    yield ServerSentEvent(
                        id=fields.get("id", [None])[-1],
                        event=fields.get("event", ["message"])[-1],
                        data="\n".join(fields.get("data", [])),
                    )
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value.removeprefix(" "))

    async def next(self, timeout: float = 20.0) -> ServerSentEvent:
        return await asyncio.wait_for(self._frames.get(), timeout)

    async def next_matching(self, event: str, timeout: float = 20.0) -> ServerSentEvent:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.next(max(0.1, deadline - asyncio.get_running_loop().time()))
            if frame.event == event:
                return frame

    async def until_cut(self, timeout: float = 20.0) -> list[ServerSentEvent]:
        """The frames that arrived but were not read yet, once the connection has ended (the
        server went away): what a client has in hand when it reconnects."""
        with contextlib.suppress(httpx.HTTPError):
            await asyncio.wait_for(self._reader, timeout)
        frames = []
        while not self._frames.empty():
            frames.append(self._frames.get_nowait())
        return frames

    async def nothing_more(self, within: float) -> bool:
        try:
            await self.next(within)
        except TimeoutError:
            return True
        return False


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    path: str = "/api/v1/stream",
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> AsyncIterator[EventStream]:
    async with client.stream(
        "GET", path, headers=headers, params=params, timeout=httpx.Timeout(10.0, read=None)
    ) as response:
        stream = EventStream(response)
        try:
            yield stream
        finally:
            await stream.close()
