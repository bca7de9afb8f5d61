"""intake's HTTP listeners: the public widget API on the widget's address, and the internal
API for the gateway on an internal address. They are two apps, so a route of one can never be
asked for on the other's address; one process serves both, with one set of consumers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from shared.background import service_lifespan
from shared.http import (
    Listener,
    create_internal_app,
    create_service_app,
    database_check,
)
from shared.internal_auth import InternalTokenVerifier

from .. import handlers
from ..bootstrap import Intake, bootstrap
from ..domain.requests import AssistantTaken, InvalidSettings, NotAllowed, Refused
from ..settings import IntakeSettings
from .internal_api import internal_routes, on_assistant_taken, on_invalid_settings
from .widget_api import (
    WidgetCors,
    on_invalid_request,
    on_not_allowed,
    on_not_found,
    on_refused,
    widget_routes,
)


def create_app(settings: IntakeSettings | None = None) -> list[Listener]:
    settings = settings or IntakeSettings()
    service = bootstrap(settings)
    readiness = {
        "database": database_check(service.engine),
        "broker": service.broker_connection.check,
    }
    widget = create_service_app(
        title="intake widget API",
        description="Public: widget ticket requests. Every call sends the assistant's widget key.",
        lifespan=service_lifespan(
            service.broker_connection,
            service.engine,
            [service.relay, service.expirer, service.refusal_flusher, service.inbox_pruner],
            also_dispose=[service.read_engine],
        ),
        readiness_checks=readiness,
        # Smaller than the internal listeners': strangers send these bodies.
        max_body_bytes=settings.widget_max_body_bytes,
    )
    widget.add_exception_handler(RequestValidationError, on_invalid_request)
    widget.add_exception_handler(Refused, on_refused)
    widget.include_router(widget_routes(), prefix="/widget/v1")
    widget.add_middleware(WidgetCors)
    internal = create_internal_app(
        service,
        audience="intake",
        title="intake (internal)",
        description="Assistants' ticket settings, diagnostics and conversations, for the gateway "
        "only, with an internal credential (`Authorization: Bearer`, audience `intake`).",
        lifespan=_started_by_the_widget_listener,
        # Only here: the widget's address is public and shows no event ids.
        readiness_details={"outbox": service.relay.status},
        exception_handlers={
            AssistantTaken: on_assistant_taken,
            InvalidSettings: on_invalid_settings,
        },
        routers=[internal_routes()],
    )
    for app in (widget, internal):
        _install(app, service)
    return [
        Listener(widget, settings.http_host, settings.http_port),
        Listener(internal, settings.internal_host, settings.internal_port),
    ]


def _install(app: FastAPI, service: Intake) -> None:
    app.state.service = service
    app.state.internal_verifier = InternalTokenVerifier(
        service.settings.internal_secret_list, audience="intake"
    )
    app.add_exception_handler(handlers.NotFound, on_not_found)
    app.add_exception_handler(NotAllowed, on_not_allowed)


@asynccontextmanager
async def _started_by_the_widget_listener(_app: FastAPI) -> AsyncIterator[None]:
    # The process's consumers and background work start with the widget app's lifespan.
    yield
