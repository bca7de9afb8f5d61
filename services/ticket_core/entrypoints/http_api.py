"""ticket-core's internal HTTP API: the gateway's way in. Each route parses, calls one handler
and shapes the answer; domain refusals become problem+json here and nowhere else."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from shared.broker import stop_broker
from shared.contracts.api import MemberOut, Ticket, TicketCreate
from shared.http import (
    MEMBER_HEADER,
    REQUEST_ID_HEADER,
    WORKSPACE_HEADER,
    broker_check,
    create_service_app,
    database_check,
)
from shared.problems import PROBLEM_RESPONSES, Problem, problem_response

from .. import handlers
from ..bootstrap import TicketCore, bootstrap
from ..domain import tickets as ticket_model
from ..domain.errors import DomainError, Forbidden, InvalidInput, NotFound, UnknownMember
from ..domain.members import Member
from ..settings import TicketCoreSettings
from ..store.unit_of_work import Causation, UnitOfWork

DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Forbidden: 403,
    UnknownMember: 401,
}


def create_app(settings: TicketCoreSettings | None = None) -> FastAPI:
    core = bootstrap(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await core.broker.start()
        core.relay.start()
        try:
            yield
        finally:
            await core.relay.stop()
            await stop_broker(core.broker)
            await core.engine.dispose()

    app = create_service_app(
        title="ticket-core (internal)",
        description="The only writer of tickets. Called by the gateway only.",
        lifespan=lifespan,
        readiness_checks={
            "database": database_check(core.engine),
            "broker": broker_check(core.broker),
        },
    )
    app.state.core = core

    async def on_domain_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DomainError)
        status = next(
            (code for kind, code in DOMAIN_ERROR_STATUS.items() if isinstance(error, kind)), 400
        )
        errors = [{"field": error.field, "message": error.detail}] if error.field else None
        return problem_response(
            Problem(
                title=error.code.replace("_", " ").capitalize(),
                status=status,
                code=error.code,
                detail=error.detail,
                errors=errors,
            )
        )

    app.add_exception_handler(DomainError, on_domain_error)
    app.include_router(_routes(), prefix="/internal/v1")
    return app


def _uow(
    request: Request,
    request_id: Annotated[str | None, Header(alias=REQUEST_ID_HEADER)] = None,
) -> UnitOfWork:
    core: TicketCore = request.app.state.core
    causation = Causation(request_id, request_id) if request_id else Causation.new()
    return core.unit_of_work(causation)


WorkspaceId = Annotated[UUID, Header(alias=WORKSPACE_HEADER)]
MemberId = Annotated[UUID, Header(alias=MEMBER_HEADER)]
Uow = Annotated[UnitOfWork, Depends(_uow)]


def _routes() -> APIRouter:
    router = APIRouter(responses=PROBLEM_RESPONSES)

    @router.post("/tickets", status_code=201, response_model=Ticket, tags=["tickets"])
    async def create_ticket(
        body: TicketCreate, workspace_id: WorkspaceId, member_id: MemberId, uow: Uow
    ) -> Ticket:
        ticket = await handlers.create_ticket(
            uow,
            handlers.CreateTicket(
                workspace_id=workspace_id,
                actor_id=member_id,
                subject=body.subject,
                description=body.description,
                priority=body.priority.value if body.priority else None,
                assignee_id=body.assignee_id,
            ),
        )
        return _ticket_out(ticket)

    @router.get("/tickets/{ticket_id}", response_model=Ticket, tags=["tickets"])
    async def get_ticket(
        ticket_id: UUID, workspace_id: WorkspaceId, member_id: MemberId, uow: Uow
    ) -> Ticket:
        return _ticket_out(await handlers.get_ticket(uow, workspace_id, member_id, ticket_id))

    @router.get("/members/{member_id}", response_model=MemberOut, tags=["members"])
    async def get_member(member_id: UUID, workspace_id: WorkspaceId, uow: Uow) -> MemberOut:
        return _member_out(await handlers.get_member(uow, workspace_id, member_id))

    return router


def _ticket_out(ticket: ticket_model.Ticket) -> Ticket:
    return Ticket.model_validate(ticket.snapshot())


def _member_out(member: Member) -> MemberOut:
    return MemberOut(
        id=member.id,
        workspace_id=member.workspace_id,
        email=member.email,
        role=member.role,
        created_at=member.created_at,
    )
