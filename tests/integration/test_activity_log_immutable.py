"""The activity log cannot be rewritten: the database itself refuses to change or remove an
entry, on SQLite and PostgreSQL."""

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from services.activity_log.bootstrap import ActivityLog
from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.handlers import record_event
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store import tables
from shared.contracts.envelope import Actor, EventEnvelope


@pytest.fixture
async def activity_log(activity_log_url: str) -> AsyncIterator[ActivityLog]:
    service = bootstrap_activity_log(ActivityLogSettings(database_url=activity_log_url))
    yield service
    await service.engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        update(tables.activity_entries).values(type="ticket.forged"),
        delete(tables.activity_entries),
    ],
    ids=["update", "delete"],
)
async def test_the_database_refuses_to_change_or_remove_an_entry(
    activity_log: ActivityLog, statement: Executable
) -> None:
    event = EventEnvelope(
        type="ticket.created",
        source="ticket-core",
        workspace_id=uuid4(),
        subject=str(uuid4()),
        sequence=1,
        actor=Actor(type="member", id="m-1"),
        data={"changes": {"status": {"from": None, "to": "new"}}},
    )
    assert await record_event(activity_log.unit_of_work(), event)

    with pytest.raises(DBAPIError, match="immutable"):
        async with activity_log.engine.begin() as connection:
            await connection.execute(statement)

    async with activity_log.engine.connect() as connection:
        types = (await connection.scalars(select(tables.activity_entries.c.type))).all()
        if connection.dialect.name == "postgresql":
            with pytest.raises(DBAPIError, match="immutable"):
                await connection.execute(text("TRUNCATE activity_entries"))
    assert types == ["ticket.created"]
