"""The dashboard API (`/api/v1/...`). Each route authenticates the caller, forwards to the
service that owns the data, and answers with its result or its problem."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import StreamingResponse

from shared.auth import TokenVerifier
from shared.background import BrokerConnection
from shared.broker import create_watching_broker
from shared.contracts.asyncapi import specification
from shared.http import RETRY_AFTER_SECONDS, create_service_app
from shared.internal_auth import InternalTokenSigner
from shared.kafka_security import aiokafka_security
from shared.problems import ProblemError, problem_responses

from ..auth import MembershipCache, StreamCaller
from ..dashboard import serve_dashboard
from ..forwarding import AUTHENTICATED, state_no_nul
from ..live import EventFeed, InvalidPosition, decode_position, server_sent_events
from ..routes.assistants import assistant_routes
from ..routes.members import member_routes
from ..routes.tickets import ticket_routes
from ..settings import GatewaySettings, replica_addresses
from ..upstream import Upstream

# The services behind the gateway: the app state's name of each, and its own name (also the
# audience of the credential the gateway signs for it).
UPSTREAM_NAMES = {"ticket_core": "ticket-core", "activity_log": "activity-log", "intake": "intake"}
# Connections to each replica of each service, kept open between requests, so that a
# dashboard call never waits for a TCP handshake while fewer than this many are in flight.
UPSTREAM_CONNECTIONS = 100


def _upstreams(settings: GatewaySettings) -> dict[str, Upstream]:
    """The three services behind the gateway, each with its own connections and the one
    signer of internal credentials."""
    signer = InternalTokenSigner(settings.internal_secret_list, issuer="gateway")
    urls = {
        "ticket_core": settings.ticket_core_url,
        "activity_log": settings.activity_log_url,
        "intake": settings.intake_url,
    }
    return {
        name: Upstream(
            UPSTREAM_NAMES[name],
            replica_addresses(url),
            signer,
            timeout_seconds=settings.upstream_timeout_seconds,
            connections=UPSTREAM_CONNECTIONS,
        )
        for name, url in urls.items()
    }


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    upstreams = _upstreams(settings)
    broker = create_watching_broker(settings, client_id="gateway")
    feed = EventFeed(
        settings.kafka_bootstrap_servers,
        queue_size=settings.stream_queue_size,
        security=aiokafka_security(settings),
    )
    feed.register(broker)
    memberships = MembershipCache(settings.membership_cache_seconds)
    feed.on_member_change(memberships.forget)

    async def connect() -> None:
        await feed.start()
        await broker.start()
        await feed.wait_until_reading()

    # Without the broker the gateway still serves the dashboard's requests; only the live
    # stream waits for it (its readiness says so).
    connection = BrokerConnection(broker, settings, connect=connect)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        connection.start()
        try:
            yield
        finally:
            await connection.stop()
            for upstream in upstreams.values():
                await upstream.aclose()

    app = create_service_app(
        title="Help desk dashboard API",
        description=DESCRIPTION,
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        # Ready: every service behind the gateway answers, and so does the broker.
        readiness_checks={
            **{upstream.name: upstream.ping for upstream in upstreams.values()},
            "kafka": connection.check,
        },
    )
    for name, upstream in upstreams.items():
        setattr(app.state, name, upstream)
    app.state.settings = settings
    app.state.feed = feed
    app.state.memberships = memberships
    _check_callers(app, settings)
    for router in (ticket_routes(), member_routes(), assistant_routes(), _live_routes()):
        app.include_router(router, prefix="/api/v1")
    app.include_router(_contract_routes())
    _state_no_nul_in_the_document(app)
    serve_dashboard(app, settings.dashboard_dir, settings.widget_api_url)
    return app


def _state_no_nul_in_the_document(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        if fresh:
            state_no_nul(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


DESCRIPTION = (
    "The dashboard's API. Authenticate with `Authorization: Bearer <JWT>` "
    "(`helpdesk token`). Errors are `application/problem+json` with a stable `code`. "
    "Text (in a body, a query or a path) cannot contain the NUL character (U+0000): "
    "422 `nul_character`."
)


def _check_callers(app: FastAPI, settings: GatewaySettings) -> None:
    """Who may call: the tokens accepted, and the browser origins CORS lets in."""
    app.state.token_verifier = TokenVerifier(
        settings.jwt_secret,
        accept_hs256=settings.accept_hs256,
        jwks_url=settings.jwks_url,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "X-Request-Id"],
        )


def _contract_routes() -> APIRouter:
    router = APIRouter()
    contract = specification()

    @router.get(
        "/api/v1/asyncapi.json",
        tags=["contract"],
        summary="The Kafka contract (AsyncAPI 3), for teams that subscribe to ticket events",
        responses=problem_responses(500),
    )
    async def asyncapi() -> dict[str, Any]:
        return contract

    return router


EVENT_STREAM = "text/event-stream"


def _live_routes() -> APIRouter:
    router = APIRouter(tags=["live"], responses=AUTHENTICATED)

    @router.get(
        "/stream",
        summary="The workspace's changes as they happen (Server-Sent Events)",
        description="Each event is one `ticket.events.v1` envelope of your workspace: `event` "
        "is its type, `data` the envelope as JSON, `id` a position to resume from. Reconnect "
        "with `Last-Event-ID` (browsers' EventSource does it by itself) to get what you missed "
        "first. A comment line arrives when nothing happens for a while; an `end` event says "
        "why the server closed the stream. EventSource cannot send headers: it may pass the "
        "token as `access_token` instead.",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "An endless `text/event-stream`.",
                "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
            },
            **problem_responses(400, 422),
        },
    )
    async def stream(
        caller: StreamCaller,
        request: Request,
        last_event_id: Annotated[
            str | None,
            Header(max_length=2000, description="The `id` of the last event you received."),
        ] = None,
    ) -> StreamingResponse:
        try:
            since = decode_position(last_event_id) if last_event_id else None
        except InvalidPosition as error:
            raise ProblemError(400, "invalid_last_event_id", str(error)) from error
        settings: GatewaySettings = request.app.state.settings
        feed: EventFeed = request.app.state.feed
        if not feed.reading:  # the broker has not answered since the gateway started
            raise ProblemError(
                503,
                "stream_unavailable",
                f"The live stream waits for the broker; retry in {RETRY_AFTER_SECONDS} seconds.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        subscription = await feed.subscribe(caller.workspace_id, caller.member_id)
        return StreamingResponse(
            server_sent_events(
                feed,
                subscription,
                since=since,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                heartbeat_seconds=settings.stream_heartbeat_seconds,
            ),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
