"""intake's `0003` (widget security) on a database that already has assistants and refusals,
on SQLite and PostgreSQL: every assistant gets a widget key, refusals stored one row each
become (at most 100 per assistant) samples, accepted requests stay."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import sqlalchemy as sa
from alembic import command
from sqlalchemy import Connection, text

from services.intake.bootstrap import MIGRATIONS_DIR
from shared.db import create_engine
from shared.migrations import alembic_config
from tests.conftest import NewDatabase

RECEIVED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# The tables as revision 0002 has them.
ASSISTANTS = sa.table(
    "assistants",
    sa.column("assistant_id", sa.String),
    sa.column("workspace_id", sa.Uuid),
    sa.column("ticket_creation_enabled", sa.Boolean),
    sa.column("require_contact_info", sa.Boolean),
    sa.column("last_sequence", sa.Integer),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
REQUESTS = sa.table(
    "ticket_requests",
    *(sa.column(name, sa.String) for name in ("request_id", "assistant_id", "conversation_id")),
    *(sa.column(name, sa.String) for name in ("fingerprint", "status", "reason", "detail")),
    sa.column("workspace_id", sa.Uuid),
    sa.column("last_sequence", sa.Integer),
    sa.column("received_at", sa.DateTime(timezone=True)),
)


def _to(connection: Connection, url: str, revision: str) -> None:
    config = alembic_config(MIGRATIONS_DIR, url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_existing_assistants_get_keys_and_stored_refusals_become_samples(
    new_database: NewDatabase,
) -> None:
    url = await new_database("intake-migration")
    engine = create_engine(url)
    workspace = uuid4()
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_to, url, "0002")
            await connection.execute(
                ASSISTANTS.insert(),
                [
                    {
                        "assistant_id": name,
                        "workspace_id": workspace,
                        "ticket_creation_enabled": True,
                        "require_contact_info": False,
                        "last_sequence": 1,
                        "updated_at": RECEIVED,
                    }
                    for name in ("asst-1", "asst-2")
                ],
            )
            rows = [
                {
                    "request_id": f"req-{n}",
                    "assistant_id": "asst-1",
                    "workspace_id": workspace,
                    "conversation_id": f"conv-{n}",
                    "fingerprint": "f",
                    "status": "rejected",
                    "reason": "ticket_creation_disabled",
                    "detail": "why",
                    "last_sequence": 1,
                    "received_at": RECEIVED + timedelta(seconds=n),
                }
                for n in range(120)
            ]
            rows.append({**rows[0], "request_id": "req-ok", "status": "pending", "reason": None})
            rows.append(
                {
                    **rows[0],
                    "request_id": "req-nobody",
                    "assistant_id": "asst-x",
                    "workspace_id": None,
                }
            )
            await connection.execute(REQUESTS.insert(), rows)
            await connection.run_sync(_to, url, "head")

        async with engine.connect() as connection:
            keys = (
                await connection.execute(
                    text("SELECT widget_key, allowed_origins FROM assistants ORDER BY 1")
                )
            ).all()
            samples = (
                (
                    await connection.execute(
                        text("SELECT request_id FROM refusal_samples ORDER BY id")
                    )
                )
                .scalars()
                .all()
            )
            kept = (
                (await connection.execute(text("SELECT request_id FROM ticket_requests")))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()

    assert len({key for key, _ in keys}) == 2
    assert all(key.startswith("wk_") and len(key) > 30 for key, _ in keys)
    assert [origins for _, origins in keys] in ([[], []], ["[]", "[]"])
    assert samples == [f"req-{n}" for n in range(20, 120)]  # the newest 100, oldest first
    assert kept == ["req-ok"]
