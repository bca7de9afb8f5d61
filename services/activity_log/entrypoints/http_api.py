"""activity-log's internal HTTP API: a ticket's history, for the gateway."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from shared.background import service_lifespan
from shared.contracts.api import ActivityEntry, ActivityPage
from shared.http import broker_check, create_service_app, database_check
from shared.internal_auth import Caller, InternalTokenVerifier
from shared.problems import PROBLEM_RESPONSES, Problem, problem_response

from .. import handlers
from ..bootstrap import ActivityLog, bootstrap
from ..settings import ActivityLogSettings


def create_app(settings: ActivityLogSettings | None = None) -> FastAPI:
    service = bootstrap(settings)
    app = create_service_app(
        title="activity-log (internal)",
        description="Immutable ticket history, fed by ticket.events.v1. Called by the gateway "
        "only, with an internal credential (`Authorization: Bearer`, audience `activity-log`).",
        max_body_bytes=service.settings.max_body_bytes,
        lifespan=service_lifespan(
            service.broker, service.engine, also_dispose=[service.read_engine]
        ),
        readiness_checks={
            "database": database_check(service.engine),
            "broker": broker_check(service.broker),
        },
    )
    app.state.service = service
    app.state.internal_verifier = InternalTokenVerifier(
        service.settings.internal_secret_list, audience="activity-log"
    )
    router = APIRouter(prefix="/internal/v1", responses=PROBLEM_RESPONSES)

    @router.get("/tickets/{ticket_id}/activity", response_model=ActivityPage, tags=["activity"])
    async def ticket_activity(
        ticket_id: UUID,
        request: Request,
        caller: Caller,
        cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
        type: Annotated[list[str] | None, Query(max_length=20)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        deleted_only: bool = False,
    ) -> ActivityPage:
        service: ActivityLog = request.app.state.service
        # activity-log owns no members: it decides with the capabilities the credential names.
        caller.require_member()
        entries = await handlers.read_history(
            service.reader(),
            caller.workspace_id,
            str(ticket_id),
            caller.capabilities,
            after_sequence=int(cursor or 0),
            types=frozenset(type) if type else None,
            limit=limit + 1,
            deleted_only=deleted_only,
        )
        page = entries[:limit]
        return ActivityPage(
            items=[
                ActivityEntry(
                    sequence=entry.sequence,
                    type=entry.type,
                    actor=entry.actor,
                    time=entry.time,
                    changes=entry.changes,
                    event_id=entry.event_id,
                )
                for entry in page
            ],
            next_cursor=str(page[-1].sequence) if len(entries) > limit else None,
        )

    @router.get(
        "/health/held-events",
        tags=["health"],
        summary="Subjects whose events wait behind a sequence gap, or conflict",
    )
    async def held_events(request: Request, _caller: Caller) -> dict[str, Any]:
        """Across workspaces, for an operator: any valid internal credential for activity-log
        (made with the internal secret), whatever workspace it names."""
        service: ActivityLog = request.app.state.service
        held = await handlers.held_back(service.reader())
        return {"status": "ok" if not held else "holding", "subjects": held}

    async def on_not_found(_request: Request, error: Exception) -> JSONResponse:
        return problem_response(
            Problem(title="Not found", status=404, code="not_found", detail=str(error))
        )

    app.add_exception_handler(handlers.HistoryNotFound, on_not_found)
    app.include_router(router)
    return app
