"""ticket-core's clock: closes resolved tickets after their workspace's idle period.

Every replica runs it; the version check on each close makes sure a ticket is closed (and
its event published) once, whichever replica gets there first.
"""

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from shared.background import PeriodicTask

from .. import handlers
from ..store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


def auto_closer(new_uow: Callable[[], UnitOfWork], interval_seconds: float) -> PeriodicTask:
    async def close_due() -> None:
        closed = await handlers.close_resolved_tickets(new_uow, datetime.now(UTC))
        if closed:
            log.info("resolved_tickets_auto_closed", count=closed)

    return PeriodicTask("auto-close", interval_seconds, close_due)
