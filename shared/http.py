"""HTTP plumbing every service's FastAPI app uses the same way: request ids, problem+json
errors, body size limits, health and readiness. Who is calling an internal API is never a
header: it is the verified credential of `shared/internal_auth.py`."""

import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol
from uuid import uuid4

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import background
from shared.background import (
    RESTART_EXIT_CODE,
    BackgroundWork,
    BrokerConnection,
    service_lifespan,
)
from shared.broker import FailureKind, classify_failure
from shared.internal_auth import InternalTokenVerifier
from shared.problems import (
    Problem,
    install_problem_handlers,
    problem_json_in_openapi,
    problem_response,
)

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")  # as ASGI carries header names

ReadinessCheck = Callable[[], Awaitable[None]]

# How a service stops on SIGTERM, each step bounded: requests in flight finish (at most
# HTTP_DRAIN_SECONDS, 10); the consumers finish the messages they hold and commit their offsets
# (CONSUMER_DRAIN_SECONDS in shared.broker, 15); the outbox relay publishes what is pending
# (OUTBOX_FLUSH_SECONDS in shared.outbox, 5); the producer stops (PRODUCER_STOP_SECONDS in
# shared.background, 3). So a service is gone within 33 s (`helpdesk run` waits 35 s before it
# kills one).
HTTP_DRAIN_SECONDS = 10

# A caller's own request id is kept if it is 1 to 200 printable ASCII characters; any other is
# replaced by one made up, so that it can be passed on in the headers of internal calls.
_REQUEST_ID = re.compile(r"[!-~]{1,200}")


def client_request_id(value: str | None) -> str | None:
    """The caller's `X-Request-Id`, if it is one this service keeps and passes on."""
    return value if value is not None and _REQUEST_ID.fullmatch(value) else None


# Every answer carries it, errors included: the caller's own, or one made up for the request.
REQUEST_ID_RESPONSE_HEADER: dict[str, Any] = {
    "description": "The request's id: the `X-Request-Id` you sent (1 to 200 printable ASCII "
    "characters), or one made for you. Quote it when you report a problem; it is in every log "
    "line of the request.",
    "required": True,
    "schema": {"type": "string"},
}


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(
        description='Each dependency: `"ok"` or `"failing: <why>"`.',
        examples=[{"database": "ok", "broker": "ok"}],
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="What the service reports beside its checks, without making it unready "
        "(e.g. `outbox`: rows pending, rows set aside because the broker refused them for good, "
        "with the latest few and their reasons).",
    )


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")
        self.limit = limit


class BodySizeLimit:
    """Refuses bodies over `max_bytes` with 413: a declared Content-Length at once, a chunked
    body as soon as what has arrived passes the limit (so nothing larger is ever buffered)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        # Answered before the request id middleware runs: the id is put on here.
        sent = headers.get(_REQUEST_ID_KEY, b"").decode("latin-1")
        request_id = client_request_id(sent) or str(uuid4())
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = _too_large(self.max_bytes, request_id)
            await response(scope, receive, send)
            return
        received = 0
        too_large = False
        answered = False

        async def counted() -> Any:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def answer(message: Any) -> None:
            # The framework may turn the read error into its own 400: once the body is known
            # to be too large, its answer is replaced by ours.
            nonlocal answered
            if not too_large:
                await send(message)
            elif not answered:
                answered = True
                await _too_large(self.max_bytes, request_id)(scope, receive, send)

        await self.app(scope, counted, answer)


def _too_large(limit: int, request_id: str | None = None) -> JSONResponse:
    return problem_response(
        Problem(
            title="Request body too large",
            status=413,
            code="body_too_large",
            detail=f"The request body is larger than the limit of {limit} bytes; send less.",
        ),
        {REQUEST_ID_HEADER: request_id} if request_id else None,
    )


def create_service_app(
    *,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    max_body_bytes: int,
    readiness_checks: dict[str, ReadinessCheck] | None = None,
    readiness_details: dict[str, Callable[[], Awaitable[Any]]] | None = None,
    version: str = "1.0.0",
) -> FastAPI:
    """A service's app with the conventions every listener shares. `max_body_bytes` has no
    default, so that no listener is ever made without a body limit: larger bodies get 413
    `body_too_large` before any route reads them."""
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    install_problem_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    # Added last, so it is the outermost of these: a too-large body is refused first.
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    _document_conventions(app)
    _add_health_routes(app, readiness_checks or {}, readiness_details or {})
    return app


def _add_health_routes(
    app: FastAPI,
    checks: dict[str, ReadinessCheck],
    readiness_details: dict[str, Callable[[], Awaitable[Any]]],
) -> None:
    """`/healthz` (the process is alive) and `/readyz` (what it depends on answers)."""

    @app.get(
        "/healthz",
        tags=["health"],
        summary="The process is alive",
        responses={500: {"model": Problem, "description": "Something broke on our side"}},
    )
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database and the broker answer",
        response_model=Readiness,
        responses={
            503: {"model": Readiness, "description": "Not ready: some check fails"},
            500: {"model": Problem, "description": "Something broke on our side"},
        },
    )
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception as error:
                results[name] = f"failing: {error}"
        ready = all(value == "ok" for value in results.values())
        details: dict[str, Any] = {}
        for name, detail in readiness_details.items():
            try:
                details[name] = await detail()
            except Exception as error:
                details[name] = f"unavailable: {type(error).__name__}"
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": results, "details": details},
            status_code=200 if ready else 503,
        )


class ServiceParts(Protocol):
    """What a service's bootstrap holds that its internal app is made of."""

    @property
    def settings(self) -> Any: ...  # with max_body_bytes and internal_secret_list
    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def read_engine(self) -> AsyncEngine: ...
    @property
    def broker_connection(self) -> BrokerConnection: ...


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def create_internal_app(
    service: ServiceParts,
    *,
    audience: str,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    background: Sequence[BackgroundWork] = (),
    exception_handlers: dict[type[Exception], ExceptionHandler] | None = None,
    readiness_details: dict[str, Callable[[], Awaitable[Any]]] | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    state_name: str = "service",
) -> FastAPI:
    """A service's internal API, the one skeleton every service shares: its broker and
    background work started with the app (unless `lifespan` says who starts them), ready when
    its database and broker answer, callers verified for `audience`, the routes under
    `/internal/v1`. `app.state.<state_name>` is the service."""
    app = create_service_app(
        title=title,
        description=description,
        max_body_bytes=service.settings.max_body_bytes,
        lifespan=lifespan
        or service_lifespan(
            service.broker_connection,
            service.engine,
            background,
            also_dispose=[service.read_engine],
        ),
        readiness_checks={
            "database": database_check(service.engine),
            "broker": service.broker_connection.check,
        },
        readiness_details=readiness_details,
    )
    setattr(app.state, state_name, service)
    app.state.internal_verifier = InternalTokenVerifier(
        service.settings.internal_secret_list, audience=audience
    )
    for kind, handler in (exception_handlers or {}).items():
        app.add_exception_handler(kind, handler)
    for router in routers:
        app.include_router(router, prefix="/internal/v1")
    return app


def _document_conventions(app: FastAPI) -> None:
    """What every route of every service does alike, put in the OpenAPI document once: error
    bodies are `application/problem+json`, every answer carries `X-Request-Id`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = problem_json_in_openapi(generate())
            for path_item in document.get("paths", {}).values():
                for operation in path_item.values():
                    if not isinstance(operation, dict):
                        continue
                    for parameter in operation.get("parameters", []):
                        parameter["schema"] = _without_null(parameter.get("schema", {}))
                    answers = operation.get("responses", {})
                    for answer in answers.values():
                        answer.setdefault("headers", {}).setdefault(
                            REQUEST_ID_HEADER, dict(REQUEST_ID_RESPONSE_HEADER)
                        )
                    operation["responses"] = dict(sorted(answers.items()))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter's schema without FastAPI's `null` branch (`str | None`): a query,
    header or path value is text or absent, never null, so "null" is no value to send."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    if len(kept) != 1:
        return schema
    annotations = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**kept[0], **annotations}


class RequestIdMiddleware:
    """Gives every request an id (the client's `X-Request-ID` when it is a fair one) for the
    log lines it causes and the services it calls, puts it on the answer, and answers an
    unhandled failure as problem+json (`_unavailable_or_internal_error`). Plain ASGI rather
    than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs every request in a task
    group and streams of its own, which cost a tenth of a service's CPU per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(_REQUEST_ID_KEY, b"").decode("latin-1")
        request_id = client_request_id(sent) or str(uuid4())
        # `request.state.request_id`: passed on to the services this request calls.
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def with_request_id(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *(
                        (name, value)
                        for name, value in message.get("headers", ())
                        if name.lower() != _REQUEST_ID_KEY
                    ),
                    (_REQUEST_ID_KEY, request_id.encode("latin-1")),
                ]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, with_request_id)
        except Exception as error:
            if started:  # the answer is on its way: nothing else can be said
                raise
            answer: Response
            if isinstance(error, BodyTooLarge):
                answer = _too_large(error.limit)
            else:
                answer = _unavailable_or_internal_error(error, Request(scope), request_id)
            await answer(scope, receive, with_request_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


# What a client is told to wait before it retries while a dependency is away.
RETRY_AFTER_SECONDS = 5


def _unavailable_or_internal_error(error: Exception, request: Request, request_id: str) -> Response:
    """A dependency that is away (the database, the broker) is 503 with `Retry-After`: the
    request was fine and may be sent again. Anything else is a bug: 500, logged with its
    traceback. Both are answered here rather than left to the server, so the caller gets
    problem+json and its connection stays usable."""
    kind, dependency = classify_failure(error)
    if kind is FailureKind.DEPENDENCY_DOWN:
        log.warning(
            "dependency_unavailable",
            path=request.url.path,
            dependency=dependency,
            error=f"{type(error).__name__}: {error}".splitlines()[0][:300],
        )
        return problem_response(
            Problem(
                title="Service unavailable",
                status=503,
                code="dependency_unavailable",
                detail=f"A dependency of the service ({dependency}) is not reachable right "
                f"now; retry in {RETRY_AFTER_SECONDS} seconds (with the same Idempotency-Key "
                "for a create).",
            ),
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    log.exception("unhandled_error", path=request.url.path)
    return problem_response(
        Problem(
            title="Internal error",
            status=500,
            code="internal_error",
            detail=f"Something broke on our side; quote request id {request_id} when "
            "you report it.",
        )
    )


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


@dataclass(frozen=True, slots=True)
class Listener:
    """One address a service answers on, with the app served there. A service with a public
    and an internal API has two listeners, so that no internal route is ever reachable on
    the public address (each app simply has no such route)."""

    app: FastAPI
    host: str
    port: int


class ListenerDispatch:
    """The ASGI app of a process with several listeners: a request goes to the app of the
    listener (local port) it arrived on; lifespan events go to the first app only, which
    starts and stops the service's consumers and background work for all of them."""

    def __init__(self, listeners: list[Listener]) -> None:
        self._first = listeners[0].app
        self._by_port = {listener.port: listener.app for listener in listeners}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._first(scope, receive, send)
            return
        server = scope.get("server") or ("", 0)
        app = self._by_port.get(int(server[1]))
        if app is None:  # pragma: no cover - every socket served belongs to a listener
            raise RuntimeError(f"no listener for local address {server}")
        await app(scope, receive, send)


def run_service(
    name: str, settings: Any, create_app: Callable[[Any], FastAPI | list[Listener]]
) -> None:
    """Run one service process: JSON logs, then its HTTP listeners (the first app's lifespan
    starts the consumers). One uvicorn server serves every listener's socket."""
    import socket
    import sys

    import uvicorn

    from shared.logging import configure_logging

    configure_logging(name, settings.log_level, settings.log_format)
    built = create_app(settings)
    listeners = (
        built
        if isinstance(built, list)
        else [Listener(built, settings.http_host, settings.http_port)]
    )
    sockets = []
    for listener in listeners:
        sock = socket.socket(socket.AF_INET6 if ":" in listener.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listener.host, listener.port))
        sockets.append(sock)
    server = uvicorn.Server(
        uvicorn.Config(
            ListenerDispatch(listeners),
            log_config=None,  # keep our JSON logging
            # Not uvloop: writing to a connection the broker has just closed raises
            # RuntimeError there instead of OSError, which aiokafka does not expect
            # (aiokafka#1038): it ended a consumer's group coordination for good after a
            # broker restart, and the service stopped consuming while it looked alive.
            loop="asyncio",
            access_log=False,  # request ids are in our own log lines
            # On SIGTERM: no new connections, requests in flight get this long to finish
            # (a live stream is ended then), before the lifespan stops the consumers.
            timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
        )
    )
    # A process stopping itself does what uvicorn does on SIGTERM, and exits with its own code
    # (uvicorn ends a process stopped by a signal by raising the signal again).
    background.stop_this_process = partial(setattr, server, "should_exit", True)
    server.run(sockets=sockets)
    if background.restart_reason() is not None:
        sys.exit(RESTART_EXIT_CODE)
