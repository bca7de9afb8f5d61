"""intake's HTTP app: health and readiness now; the public widget API joins it (issue 5)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.broker import stop_broker
from shared.http import broker_check, create_service_app, database_check

from ..bootstrap import bootstrap
from ..settings import IntakeSettings


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    service = bootstrap(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.broker.start()
        service.relay.start()
        try:
            yield
        finally:
            await service.relay.stop()
            await stop_broker(service.broker)
            await service.engine.dispose()

    app = create_service_app(
        title="intake",
        description="Widget ticket requests.",
        lifespan=lifespan,
        readiness_checks={
            "database": database_check(service.engine),
            "broker": broker_check(service.broker),
        },
    )
    app.state.service = service
    return app
