"""Where events enter activity-log: the `ticket.events.v1` subscriber."""

from collections.abc import Callable

import structlog
from faststream.kafka import KafkaBroker

from shared.broker import Subscriptions
from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import TICKET_EVENTS

from .. import handlers
from ..store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


def register_consumers(
    broker: KafkaBroker, unit_of_work: Callable[[], UnitOfWork], *, group_id: str
) -> None:
    # One group for the one topic (its name predates per-topic groups: kept, so that a
    # deployed activity-log keeps its offsets).
    subscriptions = Subscriptions(broker, "activity-log", group_id, group_per_topic=False)

    @subscriptions.on_batch(
        TICKET_EVENTS, "Stores one immutable activity entry per ticket event.", EventEnvelope
    )
    async def on_ticket_events(events: list[EventEnvelope]) -> None:
        stored = await handlers.record_events(unit_of_work(), events)
        if stored < len(events):
            log.debug("duplicate_events_dropped", events=len(events) - stored)
