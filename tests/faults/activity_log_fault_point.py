"""activity-log with a fault point, for the fault suite only: `python -m
tests.faults.activity_log_fault_point` runs activity-log as `python -m services.activity_log`
does, except that the process SIGKILLs itself right after the batch that brings its stored
events to `FAULT_POINT_KILL_AFTER_STORED_EVENTS` is committed (entries and inbox rows), and
before that batch's offsets are committed: the crash window the inbox exists for. It fires
once per `FAULT_POINT_MARKER_FILE` (the file records the batch's last event id), so the
restarted process runs normally and must drop the redelivered events.

It lives under tests/, which neither the package nor the image contains, and nothing in
services/ or shared/ knows of it, so no setting can switch it on in production.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from services.activity_log import handlers
from services.activity_log.entrypoints.main import main
from services.activity_log.store.unit_of_work import UnitOfWork
from shared.contracts.envelope import EventEnvelope

KILL_AFTER_ENV = "FAULT_POINT_KILL_AFTER_STORED_EVENTS"
MARKER_ENV = "FAULT_POINT_MARKER_FILE"


def arm(kill_after_stored_events: int, marker: Path) -> None:
    """Wrap `handlers.record_events`, which the consumer looks up at each batch (and
    `record_event`, its one-at-a-time fallback, goes through)."""
    if marker.exists():  # this is the restarted process: it runs as activity-log does
        return
    record_events = handlers.record_events
    stored = 0

    async def record_events_then_die(uow: UnitOfWork, events: Sequence[EventEnvelope]) -> int:
        nonlocal stored
        recorded = await record_events(uow, events)
        stored += recorded
        if stored >= kill_after_stored_events and events:
            die(marker, events[-1])
        return recorded

    handlers.record_events = record_events_then_die


def die(marker: Path, event: EventEnvelope) -> None:
    """SIGKILL: no handler, no `finally`, no offset commit runs after this."""
    marker.write_text(str(event.id))
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    arm(int(os.environ[KILL_AFTER_ENV]), Path(os.environ[MARKER_ENV]))
    main()
