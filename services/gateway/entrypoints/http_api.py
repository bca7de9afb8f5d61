"""The dashboard API (`/api/v1/...`). Each route authenticates the caller, forwards to the
service that owns the data, and answers with its result or its problem."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from uuid import UUID

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

from shared.contracts.api import ActivityPage, Ticket, TicketCreate
from shared.http import create_service_app
from shared.problems import PROBLEM_RESPONSES, Problem, problem_response

from ..auth import CurrentCaller
from ..settings import GatewaySettings
from ..upstream import Upstream


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    clients: list[httpx.AsyncClient] = []

    def upstream(name: str, base_url: str) -> Upstream:
        client = httpx.AsyncClient(base_url=base_url, timeout=settings.upstream_timeout_seconds)
        clients.append(client)
        return Upstream(name, client)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for client in clients:
                await client.aclose()

    app = create_service_app(
        title="Help desk dashboard API",
        description=(
            "The dashboard's API. Authenticate with `Authorization: Bearer <JWT>` "
            "(`helpdesk token`). Errors are `application/problem+json` with a stable `code`."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ticket_core = upstream("ticket-core", settings.ticket_core_url)
    app.state.activity_log = upstream("activity-log", settings.activity_log_url)
    app.middleware("http")(_body_size_limit(settings.max_body_bytes))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "X-Request-Id"],
        )
    app.include_router(_ticket_routes(), prefix="/api/v1")
    return app


def _ticket_routes() -> APIRouter:
    router = APIRouter(tags=["tickets"], responses=PROBLEM_RESPONSES)

    @router.post("/tickets", status_code=201, response_model=Ticket, summary="Create a ticket")
    async def create_ticket(
        body: TicketCreate, caller: CurrentCaller, request: Request, response: Response
    ) -> Ticket:
        ticket = Ticket.model_validate(
            await request.app.state.ticket_core.call(
                "POST",
                "/internal/v1/tickets",
                workspace_id=caller.workspace_id,
                member_id=caller.member_id,
                request_id=caller.request_id,
                json=body.model_dump(mode="json", exclude_none=True),
            )
        )
        response.headers["ETag"] = f'"{ticket.version}"'
        response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
        return ticket

    @router.get("/tickets/{ticket_id}", response_model=Ticket, summary="One ticket")
    async def get_ticket(
        ticket_id: UUID, caller: CurrentCaller, request: Request, response: Response
    ) -> Ticket:
        ticket = await _fetch_ticket(request, caller, ticket_id)
        response.headers["ETag"] = f'"{ticket.version}"'
        return ticket

    @router.get(
        "/tickets/{ticket_id}/activity",
        response_model=ActivityPage,
        summary="A ticket's history, oldest first",
    )
    async def ticket_activity(
        ticket_id: UUID, caller: CurrentCaller, request: Request
    ) -> ActivityPage:
        # Ask the owner first: a ticket of another workspace is a 404 here, whatever
        # activity-log holds.
        await _fetch_ticket(request, caller, ticket_id)
        return ActivityPage.model_validate(
            await request.app.state.activity_log.call(
                "GET",
                f"/internal/v1/tickets/{ticket_id}/activity",
                workspace_id=caller.workspace_id,
                member_id=caller.member_id,
                request_id=caller.request_id,
            )
        )

    return router


async def _fetch_ticket(request: Request, caller: CurrentCaller, ticket_id: UUID) -> Ticket:
    return Ticket.model_validate(
        await request.app.state.ticket_core.call(
            "GET",
            f"/internal/v1/tickets/{ticket_id}",
            workspace_id=caller.workspace_id,
            member_id=caller.member_id,
            request_id=caller.request_id,
        )
    )


def _body_size_limit(
    max_bytes: int,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return problem_response(
                Problem(
                    title="Request body too large",
                    status=413,
                    code="body_too_large",
                    detail=f"The body has {declared} bytes; the limit is {max_bytes}.",
                )
            )
        return await call_next(request)

    return limit
