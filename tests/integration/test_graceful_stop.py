"""SIGTERM stops ticket-core without losing what it was doing: a dashboard create held in
flight (its table locked in PostgreSQL) when the signal arrives is finished and answered 201,
no new connection is taken meanwhile, the ticket's event is published, and the process ends
by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from services.ticket_core import handlers
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.store import tables
from shared.contracts.topics import TICKET_EVENTS
from tests.e2e.conftest import free_port
from tests.support.credentials import strong_secrets
from tests.support.internal_credentials import internal_credential
from tests.support.kafka_reader import body, read_until
from tests.support.waiting import eventually


def start_ticket_core(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.ticket_core"], env=env, stdout=log, stderr=log
        )


@pytest.mark.parametrize("db_kind", ["postgres"])  # a row lock to hold a request in flight
async def test_sigterm_finishes_the_request_in_flight_and_publishes_its_event(
    ticket_core: TicketCore,
    ticket_core_url: str,
    kafka: str,
    fresh_group: str,
    tmp_path: Path,
) -> None:
    team = await handlers.create_workspace(ticket_core.unit_of_work(), "Acme", "o@acme.io")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        **strong_secrets(),
        "HELPDESK_ENV": "production",
        "TICKET_CORE_DATABASE_URL": ticket_core_url,
        "TICKET_CORE_CONSUMER_GROUP": fresh_group,
        "TICKET_CORE_HTTP_PORT": str(port := free_port()),
    }
    log_path = tmp_path / "ticket-core.log"
    process = start_ticket_core(env, log_path)
    address = f"http://127.0.0.1:{port}"
    credential = internal_credential(
        "ticket-core",
        team.workspace.id,
        team.owner.id,
        "owner",
        secrets=env["HELPDESK_INTERNAL_SECRETS"],
    )
    locker = await asyncpg.connect(
        make_url(ticket_core_url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        async with httpx.AsyncClient(base_url=address, timeout=30.0) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(ready, timeout=60, what="ticket-core ready")
            holding = locker.transaction()
            await holding.start()
            await locker.execute("LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
            create = asyncio.create_task(
                client.post(
                    "/internal/v1/tickets",
                    json={"subject": "In flight at SIGTERM"},
                    headers={"Authorization": f"Bearer {credential}"},
                )
            )

            async def request_waits_for_the_lock() -> bool:
                waiting = await locker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return bool(waiting)

            await eventually(request_waits_for_the_lock, what="the create in flight")
            process.send_signal(signal.SIGTERM)

            async def shutting_down() -> bool:
                return b"Shutting down" in log_path.read_bytes()

            await eventually(shutting_down, what="ticket-core shutting down")
            async with httpx.AsyncClient(base_url=address) as newcomer:
                with pytest.raises(httpx.ConnectError):  # no new connection is taken
                    await newcomer.get("/healthz")
            await holding.rollback()
            created = await create
        assert created.status_code == 201, created.text
        ticket_id = created.json()["id"]
        assert await asyncio.to_thread(process.wait, 40) == -signal.SIGTERM
    finally:
        await locker.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    async with ticket_core.engine.connect() as connection:
        unpublished = await connection.scalar(
            select(func.count())
            .select_from(tables.outbox)
            .where(tables.outbox.c.published_at.is_(None))
        )
    assert unpublished == 0
    # Published (at least once: consumers drop a second copy by event id).
    records = await read_until(kafka, TICKET_EVENTS.name, lambda r: r.key == ticket_id.encode())
    assert {body(record)["type"] for record in records} == {"ticket.created"}
