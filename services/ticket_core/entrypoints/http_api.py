"""ticket-core's internal HTTP API: the gateway's way in. Each route parses, calls one handler
and shapes the answer; domain refusals become problem+json here and nowhere else."""

from dataclasses import replace
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from shared.contracts.api import (
    ConversationLink,
    MemberCreate,
    MemberOut,
    MemberPatch,
    Note,
    NoteCreate,
    Ticket,
    TicketCounts,
    TicketCreate,
    TicketPage,
    TicketPatch,
    WorkspaceOut,
    WorkspacePatch,
)
from shared.contracts.formats import ConversationIdText, IfMatchText
from shared.contracts.queries import TicketFilters, TicketQuery
from shared.http import REQUEST_ID_HEADER, create_internal_app
from shared.internal_auth import Caller
from shared.problems import PROBLEM_RESPONSES, Problem, problem_response

from .. import handlers
from ..bootstrap import TicketCore, bootstrap
from ..domain import tickets as ticket_model
from ..domain.errors import (
    ConcurrentUpdate,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    StaleVersion,
    UnknownMember,
)
from ..domain.members import Member, Workspace
from ..settings import TicketCoreSettings
from ..store.ticket_list import ASSIGNEE_NONE, TicketFilter
from ..store.unit_of_work import Causation, UnitOfWork

DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Forbidden: 403,
    UnknownMember: 401,
    Conflict: 409,
    ConcurrentUpdate: 409,
    StaleVersion: 412,
}


def create_app(settings: TicketCoreSettings | None = None) -> FastAPI:
    core = bootstrap(settings)
    return create_internal_app(
        core,
        audience="ticket-core",
        title="ticket-core (internal)",
        description="The only writer of tickets. Called by the gateway only, with an internal "
        "credential (`Authorization: Bearer`, audience `ticket-core`).",
        background=[core.relay, core.auto_closer],
        readiness_details={"outbox": core.relay.status},
        exception_handlers={DomainError: _on_domain_error},
        routers=[
            _ticket_routes(),
            _ticket_list_routes(),
            _ticket_edit_routes(),
            _conversation_link_routes(),
            _member_routes(),
        ],
        state_name="core",
    )


async def _on_domain_error(_request: Request, error: Exception) -> JSONResponse:
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


def _uow(
    request: Request,
    request_id: Annotated[str | None, Header(alias=REQUEST_ID_HEADER)] = None,
) -> UnitOfWork:
    core: TicketCore = request.app.state.core
    causation = Causation(request_id, request_id) if request_id else Causation.new()
    return core.unit_of_work(causation)


def _reader(request: Request) -> UnitOfWork:
    core: TicketCore = request.app.state.core
    return core.reader()


async def _workspace_of(caller: Caller) -> UUID:
    return caller.workspace_id


async def _member_of(caller: Caller) -> UUID:
    # Only the member: what they may do is decided by the membership stored here, never by
    # the role the credential also names.
    return caller.require_member_id()


# Both come from the one verified credential of the call (FastAPI verifies it once).
WorkspaceId = Annotated[UUID, Depends(_workspace_of)]
MemberId = Annotated[UUID, Depends(_member_of)]
Uow = Annotated[UnitOfWork, Depends(_uow)]
ReadUow = Annotated[UnitOfWork, Depends(_reader)]  # for queries


def _ticket_out(ticket: ticket_model.Ticket, response: Response | None = None) -> Ticket:
    if response is not None:
        response.headers["ETag"] = f'"{ticket.version}"'
    return Ticket.model_validate(ticket.snapshot())


def _version_in(if_match: str | None) -> int | None:
    """The version an `If-Match` names; its form was checked (IfMatchText)."""
    return None if if_match is None else int(if_match.removeprefix("W/").strip('"'))


def _ticket_routes() -> APIRouter:
    """Create, read and delete one ticket."""
    router = APIRouter(tags=["tickets"], responses=PROBLEM_RESPONSES)

    @router.post("/tickets", status_code=201, response_model=Ticket)
    async def create_ticket(
        body: TicketCreate,
        workspace_id: WorkspaceId,
        member_id: MemberId,
        uow: Uow,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Any:
        snapshot = await handlers.create_ticket_once(
            uow,
            handlers.CreateTicket(
                workspace_id=workspace_id,
                actor_id=member_id,
                subject=body.subject,
                description=body.description,
                priority=body.priority.value if body.priority else None,
                assignee_id=body.assignee_id,
                idempotency_key=idempotency_key,
            ),
        )
        response.headers["ETag"] = f'"{snapshot["version"]}"'
        return snapshot

    @router.get("/tickets/{ticket_id}", response_model=Ticket)
    async def get_ticket(
        ticket_id: UUID,
        workspace_id: WorkspaceId,
        member_id: MemberId,
        uow: ReadUow,
        response: Response,
    ) -> Ticket:
        ticket = await handlers.get_ticket(uow, workspace_id, member_id, ticket_id)
        return _ticket_out(ticket, response)

    @router.delete("/tickets/{ticket_id}", status_code=204)
    async def delete_ticket(
        ticket_id: UUID, workspace_id: WorkspaceId, member_id: MemberId, uow: Uow
    ) -> Response:
        await handlers.delete_ticket(uow, workspace_id, member_id, ticket_id)
        return Response(status_code=204)

    return router


def _ticket_list_routes() -> APIRouter:
    """The list and the per-status counts."""
    router = APIRouter(tags=["tickets"], responses=PROBLEM_RESPONSES)

    @router.get("/tickets", response_model=TicketPage)
    async def list_tickets(
        workspace_id: WorkspaceId,
        member_id: MemberId,
        uow: ReadUow,
        query: Annotated[TicketQuery, Query()],
    ) -> TicketPage:
        page = await handlers.list_tickets(
            uow,
            member_id,
            replace(
                _filter_of(workspace_id, query),
                statuses=frozenset(query.status) if query.status else None,
                sort=query.sort,
                cursor=query.cursor or None,  # `cursor=` (empty) is the first page
                limit=query.limit,
            ),
        )
        return TicketPage(
            items=[Ticket.model_validate(row) for row in page.rows],
            next_cursor=page.next_cursor,
            hidden_matches=page.hidden_matches,
            hidden_matches_capped=sorted(page.hidden_matches_capped),
        )

    @router.get("/ticket-counts", response_model=TicketCounts)
    async def count_tickets(
        workspace_id: WorkspaceId,
        member_id: MemberId,
        uow: ReadUow,
        filters: Annotated[TicketFilters, Query()],
    ) -> TicketCounts:
        counts = await handlers.count_tickets(uow, member_id, _filter_of(workspace_id, filters))
        return TicketCounts(
            counts=counts.counts,
            total=sum(counts.counts.values()),
            capped=sorted(counts.capped),
        )

    return router


def _filter_of(workspace_id: UUID, filters: TicketFilters) -> TicketFilter:
    """What the list and the counts filter on alike."""
    return TicketFilter(
        workspace_id=workspace_id,
        priorities=frozenset(p.value for p in filters.priority) if filters.priority else None,
        assignee=_parse_assignee(filters.assignee_id),
        query=filters.q or None,
    )


def _ticket_edit_routes() -> APIRouter:
    """Changes to a ticket and its notes."""
    router = APIRouter(tags=["tickets"], responses=PROBLEM_RESPONSES)

    @router.patch("/tickets/{ticket_id}", response_model=Ticket)
    async def update_ticket(
        ticket_id: UUID,
        body: TicketPatch,
        workspace_id: WorkspaceId,
        member_id: MemberId,
        uow: Uow,
        response: Response,
        if_match: Annotated[IfMatchText | None, Header(max_length=200)] = None,
    ) -> Ticket:
        ticket = await handlers.update_ticket(
            uow,
            handlers.UpdateTicket(
                workspace_id=workspace_id,
                actor_id=member_id,
                ticket_id=ticket_id,
                changes=body.model_dump(exclude_unset=True),
                expected_version=_version_in(if_match),
            ),
        )
        return _ticket_out(ticket, response)

    @router.post("/tickets/{ticket_id}/notes", status_code=201, response_model=Note)
    async def add_note(
        ticket_id: UUID, body: NoteCreate, workspace_id: WorkspaceId, member_id: MemberId, uow: Uow
    ) -> Note:
        ticket, note_id = await handlers.add_note(
            uow, workspace_id, member_id, ticket_id, body.body
        )
        return Note(
            id=note_id,
            ticket_id=ticket.id,
            body=body.body.strip(),
            author_id=member_id,
            ticket_version=ticket.version,
        )

    return router


def _conversation_link_routes() -> APIRouter:
    """A ticket's links to chat conversations."""
    router = APIRouter(tags=["tickets"], responses=PROBLEM_RESPONSES)

    @router.post("/tickets/{ticket_id}/conversations", response_model=Ticket)
    async def link_conversation(
        ticket_id: UUID,
        body: ConversationLink,
        workspace_id: WorkspaceId,
        member_id: MemberId,
        uow: Uow,
        response: Response,
    ) -> Ticket:
        ticket = await handlers.link_conversation(
            uow, workspace_id, member_id, ticket_id, body.conversation_id
        )
        return _ticket_out(ticket, response)

    @router.delete("/tickets/{ticket_id}/conversations/{conversation_id}", response_model=Ticket)
    async def unlink_conversation(
        ticket_id: UUID,
        conversation_id: ConversationIdText,
        workspace_id: WorkspaceId,
        member_id: MemberId,
        uow: Uow,
        response: Response,
    ) -> Ticket:
        ticket = await handlers.unlink_conversation(
            uow, workspace_id, member_id, ticket_id, conversation_id
        )
        return _ticket_out(ticket, response)

    return router


def _parse_assignee(value: str | None) -> UUID | str | None:
    """The assignee filter as the list takes it; its form was checked (AssigneeFilterText)."""
    if value in (None, "", "me", ASSIGNEE_NONE):
        return value or None
    return UUID(value)


def _member_out(member: Member) -> MemberOut:
    return MemberOut.model_validate(member, from_attributes=True)


def _workspace_out(workspace: Workspace) -> WorkspaceOut:
    return WorkspaceOut.model_validate(workspace, from_attributes=True)


def _member_routes() -> APIRouter:
    router = APIRouter(tags=["members"], responses=PROBLEM_RESPONSES)

    @router.get("/workspace", response_model=WorkspaceOut, tags=["workspace"])
    async def get_workspace(
        workspace_id: WorkspaceId, member_id: MemberId, uow: ReadUow
    ) -> WorkspaceOut:
        return _workspace_out(await handlers.get_workspace(uow, workspace_id, member_id))

    @router.patch("/workspace", response_model=WorkspaceOut, tags=["workspace"])
    async def change_workspace(
        body: WorkspacePatch, workspace_id: WorkspaceId, member_id: MemberId, uow: Uow
    ) -> WorkspaceOut:
        workspace = await handlers.set_auto_close(
            uow, workspace_id, member_id, body.auto_close_after_days
        )
        return _workspace_out(workspace)

    @router.get("/members", response_model=list[MemberOut])
    async def list_members(
        workspace_id: WorkspaceId, member_id: MemberId, uow: ReadUow
    ) -> list[MemberOut]:
        return [_member_out(m) for m in await handlers.list_members(uow, workspace_id, member_id)]

    @router.post("/members", status_code=201, response_model=MemberOut)
    async def add_member(
        body: MemberCreate, workspace_id: WorkspaceId, member_id: MemberId, uow: Uow
    ) -> MemberOut:
        member = await handlers.add_member(
            uow, workspace_id, member_id, body.email, body.role.value
        )
        return _member_out(member)

    @router.get("/members/{target_id}", response_model=MemberOut)
    async def get_member(
        target_id: UUID, workspace_id: WorkspaceId, member_id: MemberId, uow: ReadUow
    ) -> MemberOut:
        """Also the gateway's membership check, made before it knows the role: a credential
        naming the member asks for themself."""
        return _member_out(
            await handlers.get_member(uow, workspace_id, target_id, actor_id=member_id)
        )

    @router.patch("/members/{target_id}", response_model=MemberOut)
    async def change_role(
        target_id: UUID, body: MemberPatch, workspace_id: WorkspaceId, member_id: MemberId, uow: Uow
    ) -> MemberOut:
        member = await handlers.change_member_role(
            uow, workspace_id, member_id, target_id, body.role.value
        )
        return _member_out(member)

    @router.delete("/members/{target_id}", status_code=204)
    async def remove_member(
        target_id: UUID, workspace_id: WorkspaceId, member_id: MemberId, uow: Uow
    ) -> Response:
        await handlers.remove_member(uow, workspace_id, member_id, target_id)
        return Response(status_code=204)

    return router
