"""activity-log's internal HTTP API: a ticket's history, for the gateway."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Request

from shared.contracts.api import ActivityEntry, ActivityPage
from shared.contracts.queries import ActivityQuery
from shared.http import create_internal_app
from shared.internal_auth import Caller
from shared.problems import PROBLEM_RESPONSES, answer_as_problem

from .. import handlers
from ..bootstrap import ActivityLog, bootstrap
from ..settings import ActivityLogSettings


def create_app(settings: ActivityLogSettings | None = None) -> FastAPI:
    service = bootstrap(settings)
    return create_internal_app(
        service,
        audience="activity-log",
        title="activity-log (internal)",
        description="Immutable ticket history, fed by ticket.events.v1. Called by the gateway "
        "only, with an internal credential (`Authorization: Bearer`, audience `activity-log`).",
        exception_handlers={
            handlers.HistoryNotFound: answer_as_problem(404, "not_found", "Not found"),
            handlers.HistoryForbidden: answer_as_problem(403, "forbidden", "Forbidden"),
        },
        routers=[_routes()],
        background=[service.inbox_pruner],
    )


def _routes() -> APIRouter:
    router = APIRouter(responses=PROBLEM_RESPONSES)

    @router.get("/tickets/{ticket_id}/activity", response_model=ActivityPage, tags=["activity"])
    async def ticket_activity(
        ticket_id: UUID, request: Request, caller: Caller, query: Annotated[ActivityQuery, Query()]
    ) -> ActivityPage:
        return await _history_page(request, caller, ticket_id, query, of_deleted=False)

    @router.get(
        "/deleted-tickets/{ticket_id}/activity", response_model=ActivityPage, tags=["activity"]
    )
    async def deleted_ticket_activity(
        ticket_id: UUID, request: Request, caller: Caller, query: Annotated[ActivityQuery, Query()]
    ) -> ActivityPage:
        return await _history_page(request, caller, ticket_id, query, of_deleted=True)

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

    return router


async def _history_page(
    request: Request, caller: Caller, ticket_id: UUID, query: ActivityQuery, *, of_deleted: bool
) -> ActivityPage:
    service: ActivityLog = request.app.state.service
    # activity-log owns no members: it decides with the capabilities the credential names.
    caller.require_member()
    entries = await handlers.read_history(
        service.reader(),
        caller.workspace_id,
        str(ticket_id),
        caller.capabilities,
        of_deleted=of_deleted,
        after_sequence=int(query.cursor or 0),
        types=frozenset(query.type) if query.type else None,
        limit=query.limit + 1,
    )
    page = entries[: query.limit]
    return ActivityPage(
        items=[ActivityEntry.model_validate(entry, from_attributes=True) for entry in page],
        next_cursor=str(page[-1].sequence) if len(entries) > query.limit else None,
    )
