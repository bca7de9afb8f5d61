"""activity-log whose consumer's group coordination fails once it is connected, for the tests
only: `python -m tests.support.activity_log_failing_client` runs activity-log as `python -m
services.activity_log` does, except that the first look for the group's coordinator after
connecting raises the error uvloop raised on a connection the broker had closed
(aiokafka#1038). It lives under tests/, which neither the package nor the image contains."""

from typing import Any

import shared.background as background
from services.activity_log.entrypoints.main import main

UVLOOP_ERROR = (
    "unable to perform operation on <TCPTransport closed=True reading=False>; the handler is closed"
)


def break_group_coordination(consumer: Any) -> None:
    """Raise where uvloop did, and make the coordination look for its coordinator again (as a
    broker going away does), so the error ends it now."""
    coordinator = consumer._coordinator

    async def closed_connection() -> None:
        raise RuntimeError(UVLOOP_ERROR)

    coordinator.ensure_coordinator_known = closed_connection
    coordinator.coordinator_dead()


watch_clients = background.BrokerConnection._watch_clients


async def break_then_watch(self: background.BrokerConnection) -> None:
    for subscriber in self.broker.subscribers:
        break_group_coordination(subscriber.consumer)  # type: ignore[attr-defined]
    await watch_clients(self)


if __name__ == "__main__":
    background.BrokerConnection._watch_clients = break_then_watch  # type: ignore[method-assign]
    main()
