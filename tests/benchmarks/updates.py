"""Concurrent ticket updates through ticket-core's service layer, beside a raw SQL update of
the same rows, on the same database in the same run.

The service layer does per write: load the member and the ticket, apply the rule, a
version-checked UPDATE, the outbox INSERT, commit. The raw baseline does one UPDATE of the
same row per transaction. "Hot": every writer hits one ticket (conflicts are counted, not
retried). "Spread": writers pick tickets at random from 500.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

from sqlalchemy import text

from services.ticket_core import handlers
from services.ticket_core.bootstrap import MIGRATIONS_DIR
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.domain.errors import ConcurrentUpdate
from services.ticket_core.settings import TicketCoreSettings
from shared.migrations import upgrade_to_head
from tests.benchmarks.pipeline import postgres_database

WRITERS = 8
SPREAD_TICKETS = 500


async def run(*, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        databases = {"sqlite": f"sqlite+aiosqlite:///{tmp}/updates.db"}
        if admin := os.environ.get("HELPDESK_TEST_POSTGRES_URL"):
            databases["postgres"] = await postgres_database(admin, "bench_updates")
        lines = [await _one_database(kind, url, seconds) for kind, url in databases.items()]
    print(
        "\n| database | target | service layer, writes/s | of which lost a version race "
        "| raw SQL UPDATE/s | ratio |\n|---|---|---|---|---|---|"
    )
    for line in lines:
        print(line)


async def _one_database(kind: str, url: str, seconds: float) -> str:
    print(f"updates on {kind}: {WRITERS} writers, {seconds:g}s per run", flush=True)
    await upgrade_to_head(MIGRATIONS_DIR, url)
    core = bootstrap_ticket_core(TicketCoreSettings(database_url=url))
    try:
        team = await handlers.create_workspace(core.unit_of_work(), "Bench", "b@bench.io")
        ws, owner = team.workspace.id, team.owner.id
        tickets = [
            (
                await handlers.create_ticket(
                    core.unit_of_work(), handlers.CreateTicket(ws, owner, f"T{i}", "")
                )
            ).id
            for i in range(SPREAD_TICKETS)
        ]
        rows = []
        for target, pick in (
            ("hot", lambda: tickets[0]),
            ("spread", lambda: random.choice(tickets)),
        ):
            conflicts = 0

            async def service_update(n: int, pick: Callable[[], UUID] = pick) -> None:
                nonlocal conflicts
                try:
                    await handlers.update_ticket(
                        core.unit_of_work(),
                        handlers.UpdateTicket(ws, owner, pick(), {"subject": f"S{n}"}),
                    )
                except ConcurrentUpdate:
                    conflicts += 1

            async def raw_update(n: int, pick: Callable[[], UUID] = pick) -> None:
                async with core.engine.begin() as connection:
                    await connection.execute(
                        text(
                            "UPDATE tickets SET subject = :s, version = version + 1 WHERE id = :id"
                        ),
                        {"s": f"R{n}", "id": _bind(kind, pick())},
                    )

            print(f"  {target}: service layer ...", flush=True)
            service, attempts = await _rate(service_update, seconds)
            print(f"  {target}: raw SQL ...", flush=True)
            raw, _ = await _rate(raw_update, seconds)
            rows.append(
                f"| {kind} | {target} | {service:,.0f}/s | {conflicts / attempts:.0%} "
                f"| {raw:,.0f}/s | x{service / raw:.2f} |"
            )
        return "\n".join(rows)
    finally:
        await core.engine.dispose()


def _bind(kind: str, ticket_id: UUID) -> object:
    # SQLAlchemy's Uuid stores 32 hex digits on SQLite and a native uuid on PostgreSQL.
    return ticket_id.hex if kind == "sqlite" else ticket_id


async def _rate(write: Callable[[int], Awaitable[None]], seconds: float) -> tuple[float, int]:
    """Writes per second (committed or refused) by `WRITERS` concurrent writers, and how many."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await write(done)
            done += 1

    begin = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return done / (time.perf_counter() - begin), done
