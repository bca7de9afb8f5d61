"""SQLite writers of one process take turns in the event loop (`shared.db.writer_turn`);
readers on the read-only engine never wait for a turn."""

import asyncio
from pathlib import Path

from shared.db import create_engine, writer_turn


async def _second_enters_while_first_holds(engine_url: str, *, read_only: bool) -> bool:
    engine = create_engine(engine_url, read_only=read_only)
    first_in, release_first = asyncio.Event(), asyncio.Event()
    second_in = asyncio.Event()

    async def first() -> None:
        async with writer_turn(engine):
            first_in.set()
            await release_first.wait()

    async def second() -> None:
        await first_in.wait()
        async with writer_turn(engine):
            second_in.set()

    try:
        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_in.wait()
        for _ in range(5):  # let the second run as far as it can
            await asyncio.sleep(0)
        entered_while_held = second_in.is_set()
        release_first.set()
        await asyncio.gather(*tasks)
        assert second_in.is_set()  # and once the first is done, it always gets its turn
        return entered_while_held
    finally:
        await engine.dispose()


async def test_a_second_sqlite_writer_waits_for_the_first_to_finish(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/turns.db"
    assert not await _second_enters_while_first_holds(url, read_only=False)


async def test_readers_on_the_read_only_engine_never_wait_for_a_turn(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/turns.db"
    assert await _second_enters_while_first_holds(url, read_only=True)
