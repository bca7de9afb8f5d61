"""The inbox forgets ids older than the de-duplication horizon and keeps the others, on
SQLite and PostgreSQL; a pruned id is then a first delivery again (which is why the horizon
is kept above the topics' retention, see shared/inbox.py)."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import insert

from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.settings import ActivityLogSettings
from services.activity_log.store import tables
from shared import inbox as inbox_module
from shared.inbox import prune_inbox

CONSUMER = "activity-log"


async def test_ids_older_than_the_horizon_are_pruned_and_newer_ones_kept(
    activity_log_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = bootstrap_activity_log(ActivityLogSettings(database_url=activity_log_url))
    now = datetime.now(UTC)
    old = [str(uuid4()) for _ in range(7)]
    recent = [str(uuid4()) for _ in range(3)]
    try:
        async with service.session_factory() as session, session.begin():
            await session.execute(
                insert(tables.inbox),
                [
                    {
                        "consumer": CONSUMER,
                        "message_id": m,
                        "processed_at": now - timedelta(days=20),
                    }
                    for m in old
                ]
                + [{"consumer": CONSUMER, "message_id": m, "processed_at": now} for m in recent],
            )
        # Small chunks, so that pruning takes several transactions.
        monkeypatch.setattr(inbox_module, "PRUNE_CHUNK", 3)
        removed = await prune_inbox(
            service.session_factory, tables.inbox, now - timedelta(hours=14 * 24)
        )
        assert removed == 7
        async with service.unit_of_work() as uow:
            assert await uow.delivered(CONSUMER, old + recent) == set(recent)
            assert await uow.first_deliveries(CONSUMER, [old[0], recent[0]]) == {old[0]}
    finally:
        await service.engine.dispose()
