"""ticket-core's internal HTTP API: the gateway's way in. Each route parses, calls one handler
and shapes the answer; domain refusals become problem+json here and nowhere else."""

from dataclasses import dataclass, replace
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from shared.contracts.api import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
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
from shared.contracts.formats import (
    IF_MATCH_MAX_LENGTH,
    ConversationIdText,
    IfMatchText,
    etag,
    version_in,
)
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
        background=[core.relay, core.auto_closer, core.inbox_pruner],
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


@dataclass(frozen=True, slots=True)
class Acting:
    """Who calls: a member, in their workspace."""

    workspace_id: UUID
    member_id: UUID


async def _acting(caller: Caller) -> Acting:
    # Only the member: what they may do is decided by the membership stored here, never by
    # the role the credential also names.
    return Acting(caller.workspace_id, caller.require_member_id())


# From the one verified credential of the call (FastAPI verifies it once).
Who = Annotated[Acting, Depends(_acting)]
Uow = Annotated[UnitOfWork, Depends(_uow)]
ReadUow = Annotated[UnitOfWork, Depends(_reader)]  # for queries


def _ticket_out(ticket: ticket_model.Ticket, response: Response | None = None) -> Ticket:
    if response is not None:
        response.headers["ETag"] = etag(ticket.version)
    return Ticket.model_validate(ticket.snapshot())


def _ticket_routes() -> APIRouter:
    """Create, read and delete one ticket."""
    router = APIRouter(tags=["tickets"], responses=PROBLEM_RESPONSES)

    @router.post("/tickets", status_code=201, response_model=Ticket)
    async def create_ticket(
        body: TicketCreate,
        who: Who,
        uow: Uow,
        response: Response,
        idempotency_key: Annotated[
            str | None, Header(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
        ] = None,
    ) -> Any:
        snapshot = await handlers.create_ticket_once(
            uow,
            handlers.CreateTicket(
                workspace_id=who.workspace_id,
                actor_id=who.member_id,
                subject=body.subject,
                description=body.description,
                priority=body.priority.value if body.priority else None,
                assignee_id=body.assignee_id,
                idempotency_key=idempotency_key,
            ),
        )
        response.headers["ETag"] = etag(snapshot["version"])
        return snapshot

    @router.get("/tickets/{ticket_id}", response_model=Ticket)
    async def get_ticket(ticket_id: UUID, who: Who, uow: ReadUow, response: Response) -> Ticket:
        ticket = await handlers.get_ticket(uow, who.workspace_id, who.member_id, ticket_id)
        return _ticket_out(ticket, response)

    @router.delete("/tickets/{ticket_id}", status_code=204)
    async def delete_ticket(ticket_id: UUID, who: Who, uow: Uow) -> Response:
        await handlers.delete_ticket(uow, who.workspace_id, who.member_id, ticket_id)
        return Response(status_code=204)

    return router


def _ticket_list_routes() -> APIRouter:
    """The list and the per-status counts."""
    router = APIRouter(tags=["tickets"], responses=PROBLEM_RESPONSES)

    @router.get("/tickets", response_model=TicketPage)
    async def list_tickets(
        who: Who, uow: ReadUow, query: Annotated[TicketQuery, Query()]
    ) -> TicketPage:
        page = await handlers.list_tickets(
            uow,
            who.member_id,
            replace(
                _filter_of(who.workspace_id, query),
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
        who: Who, uow: ReadUow, filters: Annotated[TicketFilters, Query()]
    ) -> TicketCounts:
        counts = await handlers.count_tickets(
            uow, who.member_id, _filter_of(who.workspace_id, filters)
        )
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
        who: Who,
        uow: Uow,
        response: Response,
        if_match: Annotated[IfMatchText | None, Header(max_length=IF_MATCH_MAX_LENGTH)] = None,
    ) -> Ticket:
        ticket = await handlers.update_ticket(
            uow,
            handlers.UpdateTicket(
                workspace_id=who.workspace_id,
                actor_id=who.member_id,
                ticket_id=ticket_id,
                changes=body.model_dump(exclude_unset=True),
                expected_version=None if if_match is None else version_in(if_match),
            ),
        )
        return _ticket_out(ticket, response)

    @router.post("/tickets/{ticket_id}/notes", status_code=201, response_model=Note)
    async def add_note(ticket_id: UUID, body: NoteCreate, who: Who, uow: Uow) -> Note:
        ticket, note_id = await handlers.add_note(
            uow, who.workspace_id, who.member_id, ticket_id, body.body
        )
        return Note(
            id=note_id,
            ticket_id=ticket.id,
            body=body.body.strip(),
            author_id=who.member_id,
            ticket_version=ticket.version,
        )

    return router


def _conversation_link_routes() -> APIRouter:
    """A ticket's links to chat conversations."""
    router = APIRouter(tags=["tickets"], responses=PROBLEM_RESPONSES)

    @router.post("/tickets/{ticket_id}/conversations", response_model=Ticket)
    async def link_conversation(
        ticket_id: UUID, body: ConversationLink, who: Who, uow: Uow, response: Response
    ) -> Ticket:
        ticket = await handlers.link_conversation(
            uow, who.workspace_id, who.member_id, ticket_id, body.conversation_id
        )
        return _ticket_out(ticket, response)

    @router.delete("/tickets/{ticket_id}/conversations/{conversation_id}", response_model=Ticket)
    async def unlink_conversation(
        ticket_id: UUID, conversation_id: ConversationIdText, who: Who, uow: Uow, response: Response
    ) -> Ticket:
        ticket = await handlers.unlink_conversation(
            uow, who.workspace_id, who.member_id, ticket_id, conversation_id
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
    async def get_workspace(who: Who, uow: ReadUow) -> WorkspaceOut:
        return _workspace_out(await handlers.get_workspace(uow, who.workspace_id, who.member_id))

    @router.patch("/workspace", response_model=WorkspaceOut, tags=["workspace"])
    async def change_workspace(body: WorkspacePatch, who: Who, uow: Uow) -> WorkspaceOut:
        workspace = await handlers.set_auto_close(
            uow, who.workspace_id, who.member_id, body.auto_close_after_days
        )
        return _workspace_out(workspace)

    @router.get("/members", response_model=list[MemberOut])
    async def list_members(who: Who, uow: ReadUow) -> list[MemberOut]:
        return [
            _member_out(m)
            for m in await handlers.list_members(uow, who.workspace_id, who.member_id)
        ]

    @router.post("/members", status_code=201, response_model=MemberOut)
    async def add_member(body: MemberCreate, who: Who, uow: Uow) -> MemberOut:
        member = await handlers.add_member(
            uow, who.workspace_id, who.member_id, body.email, body.role.value
        )
        return _member_out(member)

    @router.get("/members/{target_id}", response_model=MemberOut)
    async def get_member(target_id: UUID, who: Who, uow: ReadUow) -> MemberOut:
        """Also the gateway's membership check, made before it knows the role: a credential
        naming the member asks for themself."""
        return _member_out(
            await handlers.get_member(uow, who.workspace_id, target_id, actor_id=who.member_id)
        )

    @router.patch("/members/{target_id}", response_model=MemberOut)
    async def change_role(target_id: UUID, body: MemberPatch, who: Who, uow: Uow) -> MemberOut:
        member = await handlers.change_member_role(
            uow, who.workspace_id, who.member_id, target_id, body.role.value
        )
        return _member_out(member)

    @router.delete("/members/{target_id}", status_code=204)
    async def remove_member(target_id: UUID, who: Who, uow: Uow) -> Response:
        await handlers.remove_member(uow, who.workspace_id, who.member_id, target_id)
        return Response(status_code=204)

    return router
