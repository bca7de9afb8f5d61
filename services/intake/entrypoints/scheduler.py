"""intake's clock: a request ticket-core never answered is not left pending forever."""

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from shared.background import PeriodicTask

from .. import handlers
from ..store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


def request_expirer(
    new_uow: Callable[[], UnitOfWork], timeout_seconds: int, interval_seconds: float
) -> PeriodicTask:
    async def expire_due() -> None:
        expired = await handlers.expire_pending(new_uow, datetime.now(UTC), timeout_seconds)
        if expired:
            log.warning("ticket_requests_timed_out", count=expired)

    return PeriodicTask("request-expiry", interval_seconds, expire_due)


def refusal_flusher(
    new_uow: Callable[[], UnitOfWork],
    guard: handlers.WidgetGuard,
    limits: handlers.IntakeLimits,
    interval_seconds: float,
) -> PeriodicTask:
    async def flush() -> None:
        await handlers.flush_refusals(new_uow, guard, limits)

    return PeriodicTask("refusal-counts", interval_seconds, flush)
