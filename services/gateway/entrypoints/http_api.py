"""The dashboard API (`/api/v1/...`). Each route authenticates the caller, forwards to the
service that owns the data, and answers with its result or its problem."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import quote, unquote
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import StreamingResponse

from shared.auth import TokenVerifier
from shared.broker import create_watching_broker
from shared.contracts.api import (
    ActivityPage,
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
    TicketSort,
    WorkspaceOut,
    WorkspacePatch,
)
from shared.contracts.asyncapi import specification
from shared.contracts.conversation_ids import CONVERSATION_ID_PATTERN, CONVERSATION_ID_RULE
from shared.contracts.tickets import TicketPriority, TicketStatus
from shared.contracts.widget import (
    AssistantTicketSettings,
    AssistantTicketSettingsOut,
    ConversationOut,
    IdentitySecretOut,
    RefusalCounts,
    RequestStatus,
    TicketRequestRecord,
    WidgetKeyOut,
)
from shared.http import broker_check, create_service_app
from shared.internal_auth import InternalTokenSigner
from shared.kafka_security import aiokafka_security
from shared.problems import ProblemError, problem_response_doc, problem_responses

from ..auth import UNAUTHENTICATED, Caller, CurrentCaller, MembershipCache, StreamCaller
from ..live import EventFeed, InvalidPosition, decode_position, server_sent_events
from ..settings import GatewaySettings
from ..upstream import Upstream, UpstreamProblem


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    clients: list[httpx.AsyncClient] = []

    signer = InternalTokenSigner(settings.internal_secret_list, issuer="gateway")

    def upstream(name: str, base_url: str) -> Upstream:
        client = httpx.AsyncClient(base_url=base_url, timeout=settings.upstream_timeout_seconds)
        clients.append(client)
        return Upstream(name, client, signer)

    broker = create_watching_broker(settings, client_id="gateway")
    feed = EventFeed(
        settings.kafka_bootstrap_servers,
        queue_size=settings.stream_queue_size,
        security=aiokafka_security(settings),
    )
    feed.register(broker)
    memberships = MembershipCache(settings.membership_cache_seconds)
    feed.on_member_change(memberships.forget)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await feed.start()
        await broker.start()
        try:
            await feed.wait_until_reading()
            yield
        finally:
            await broker.stop()
            for client in clients:
                await client.aclose()

    ticket_core = upstream("ticket-core", settings.ticket_core_url)
    activity_log = upstream("activity-log", settings.activity_log_url)
    intake = upstream("intake", settings.intake_url)

    app = create_service_app(
        title="Help desk dashboard API",
        description=(
            "The dashboard's API. Authenticate with `Authorization: Bearer <JWT>` "
            "(`helpdesk token`). Errors are `application/problem+json` with a stable `code`. "
            "Text (in a body, a query or a path) cannot contain the NUL character (U+0000): "
            "422 `nul_character`."
        ),
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        # Ready: every service behind the gateway answers, and so does the broker.
        readiness_checks={
            "ticket-core": ticket_core.ping,
            "activity-log": activity_log.ping,
            "intake": intake.ping,
            "kafka": broker_check(broker),
        },
    )
    app.state.settings = settings
    app.state.ticket_core = ticket_core
    app.state.activity_log = activity_log
    app.state.intake = intake
    app.state.feed = feed
    app.state.memberships = memberships
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
    app.include_router(_ticket_routes(), prefix="/api/v1")
    app.include_router(_member_routes(), prefix="/api/v1")
    app.include_router(_intake_routes(), prefix="/api/v1")
    app.include_router(_live_routes(), prefix="/api/v1")

    @app.get(
        "/api/v1/asyncapi.json",
        tags=["contract"],
        summary="The Kafka contract (AsyncAPI 3), for teams that subscribe to ticket events",
        responses=problem_responses(500),
    )
    async def asyncapi() -> dict[str, Any]:
        return contract

    contract = specification()
    return app


async def _forward(
    upstream: Upstream,
    caller: Caller,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: Any = None,
    headers: dict[str, str | None] | None = None,
) -> Any:
    """Call an internal service as `caller`: its workspace, member, request id, and the role
    and capabilities ticket-core holds for it (services that own no members decide with the
    capabilities)."""
    _refuse_nul([*_texts(unquote(path), "path"), *_texts(params, "query"), *_texts(json, "")])
    try:
        return await upstream.call(
            method,
            f"/internal/v1{path}",
            workspace_id=caller.workspace_id,
            member_id=caller.member_id,
            role=caller.role,
            capabilities=caller.capabilities,
            request_id=caller.request_id,
            json=json,
            params=params,
            extra_headers=headers,
        )
    except UpstreamProblem as problem:
        if problem.problem.status == 401:
            # The member was removed after the gateway checked: a 401 like its own.
            problem.headers = UNAUTHENTICATED
        raise


def _refuse_nul(texts: list[tuple[str, str]]) -> None:
    """No text with U+0000 goes further: PostgreSQL can neither store nor search for it and
    would fail the request, and so would every consumer of an event that carried it."""
    fields = sorted({field for field, text in texts if "\x00" in text})
    if fields:
        raise ProblemError(
            422,
            "nul_character",
            f"Text cannot contain the NUL character (U+0000); found in: {', '.join(fields)}.",
            title="NUL character in text",
            errors=[
                {"field": field, "message": "contains U+0000", "type": "nul_character"}
                for field in fields
            ],
        )


def _texts(value: Any, at: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON-like value, with where it is (`a.b`; a list's items share it)."""
    if isinstance(value, str):
        yield at, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, f"{at}.{key}" if at else str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item, at)


def _segment(value: str) -> str:
    """A path parameter as one segment of an internal service's path: percent-encoded, so
    that neither `/`, `?`, `#`, `..` nor a control character can change which path (or
    service) is called."""
    return quote(value, safe="").replace(".", "%2E")


async def _ticket_core(
    request: Request, caller: Caller, method: str, path: str, **options: Any
) -> Any:
    return await _forward(request.app.state.ticket_core, caller, method, path, **options)


async def _intake(request: Request, caller: Caller, method: str, path: str, **options: Any) -> Any:
    return await _forward(request.app.state.intake, caller, method, path, **options)


SEARCH = (
    "Words the subject must contain, in any order, ignoring case; each word matches "
    "anywhere in the subject and `%`, `_`, `\\` are literal."
)
EVENT_STREAM = "text/event-stream"
# Header values passed on to an internal service: what an HTTP header can carry as text.
PRINTABLE_ASCII = r"^[ -~]*$"
AssistantId = Annotated[str, Path(min_length=1, max_length=100)]

# -- what the routes answer, for the OpenAPI document ------------------------------------------

_UNAUTHORIZED = {
    **problem_response_doc(401),
    "headers": {
        "WWW-Authenticate": {
            "description": "`Bearer`: send `Authorization: Bearer <token>`.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
}
# Every authenticated route: the token is checked (401, or 503 while the IdP's keys cannot be
# fetched), the member is looked up at ticket-core (503 when it does not answer), and the
# route's own answer comes from an internal service.
AUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHORIZED,
    500: problem_response_doc(500),
    502: problem_response_doc(
        502,
        "An internal service answered an error without a problem document (`upstream_error`), "
        "or refused the gateway's internal credential (`internal_credential_refused`: the "
        "services do not share HELPDESK_INTERNAL_SECRETS)",
    ),
    503: problem_response_doc(
        503,
        "An internal service (`upstream_unavailable`) or the token issuer's signing keys "
        "(`signing_keys_unavailable`) cannot be reached right now; retry in a moment",
    ),
}
_ETAG = {
    "ETag": {
        "description": "The ticket's `version`, quoted; send it back as `If-Match`.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    }
}
_LOCATION = {
    "Location": {
        "description": "The new ticket's URL.",
        "required": True,
        "schema": {"type": "string"},
    }
}


def _answers(
    *statuses: int, ok: int = 200, headers: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A route's own problem answers, and the headers of its success answer."""
    answers = problem_responses(*statuses)
    if headers:
        answers[ok] = {"headers": headers}
    return answers


# A route with a JSON body can also be refused for the body itself.
WITH_BODY = (400, 413, 422)


def _ticket_filters(
    priority: Annotated[list[TicketPriority] | None, Query()] = None,
    assignee_id: Annotated[str | None, Query(description="Member id, `me` or `none`.")] = None,
    q: Annotated[str | None, Query(max_length=200, description=SEARCH)] = None,
) -> dict[str, Any]:
    """The filters the list and the counts share, as ticket-core's query parameters."""
    params: dict[str, Any] = {}
    if priority:
        params["priority"] = [p.value for p in priority]
    if assignee_id is not None:
        params["assignee_id"] = assignee_id
    if q is not None:
        params["q"] = q
    return params


TicketFilters = Annotated[dict[str, Any], Depends(_ticket_filters)]


def _with_etag(answer: Any, response: Response) -> Ticket:
    ticket = Ticket.model_validate(answer)
    response.headers["ETag"] = f'"{ticket.version}"'
    return ticket


def _ticket_routes() -> APIRouter:
    router = APIRouter(tags=["tickets"], responses=AUTHENTICATED)

    @router.post(
        "/tickets",
        status_code=201,
        response_model=Ticket,
        summary="Create a ticket",
        responses=_answers(403, *WITH_BODY, ok=201, headers={**_ETAG, **_LOCATION}),
    )
    async def create_ticket(
        body: TicketCreate,
        caller: CurrentCaller,
        request: Request,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                max_length=200,
                pattern=PRINTABLE_ASCII,
                description="Retrying with the same key creates nothing more.",
            ),
        ] = None,
    ) -> Ticket:
        ticket = _with_etag(
            await _ticket_core(
                request,
                caller,
                "POST",
                "/tickets",
                json=body.model_dump(mode="json", exclude_none=True),
                headers={"Idempotency-Key": idempotency_key},
            ),
            response,
        )
        response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
        return ticket

    @router.get(
        "/tickets",
        response_model=TicketPage,
        summary="List and search tickets",
        responses=_answers(422),
        description="Without `status`, closed and spam tickets are hidden; `hidden_matches` "
        "says how many tickets matching the other filters the status filter hid.",
    )
    async def list_tickets(
        caller: CurrentCaller,
        request: Request,
        filters: TicketFilters,
        status: Annotated[list[TicketStatus] | None, Query()] = None,
        sort: TicketSort = TicketSort.UPDATED,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> TicketPage:
        params = {**filters, "sort": sort.value, "limit": limit}
        if status:
            params["status"] = [s.value for s in status]
        if cursor:
            params["cursor"] = cursor
        return TicketPage.model_validate(
            await _ticket_core(request, caller, "GET", "/tickets", params=params)
        )

    @router.get(
        "/ticket-counts",
        response_model=TicketCounts,
        summary="Tickets per status, for the dashboard's tabs",
        responses=_answers(422),
        description="Counts every status, closed and spam included, of the tickets matching "
        "the other filters.",
    )
    async def count_tickets(
        caller: CurrentCaller,
        request: Request,
        filters: TicketFilters,
    ) -> TicketCounts:
        return TicketCounts.model_validate(
            await _ticket_core(request, caller, "GET", "/ticket-counts", params=filters)
        )

    @router.get(
        "/tickets/{ticket_id}",
        response_model=Ticket,
        summary="One ticket",
        responses=_answers(404, 422, headers=_ETAG),
    )
    async def get_ticket(
        ticket_id: UUID, caller: CurrentCaller, request: Request, response: Response
    ) -> Ticket:
        return _with_etag(
            await _ticket_core(request, caller, "GET", f"/tickets/{ticket_id}"), response
        )

    @router.patch(
        "/tickets/{ticket_id}",
        response_model=Ticket,
        summary="Change subject, description, priority, status or assignee",
        responses=_answers(403, 404, 409, 412, *WITH_BODY, headers=_ETAG),
    )
    async def update_ticket(
        ticket_id: UUID,
        body: TicketPatch,
        caller: CurrentCaller,
        request: Request,
        response: Response,
        if_match: Annotated[
            str | None,
            Header(
                max_length=200,
                pattern=PRINTABLE_ASCII,
                description="The ETag you read; 412 if the ticket changed since.",
            ),
        ] = None,
    ) -> Ticket:
        return _with_etag(
            await _ticket_core(
                request,
                caller,
                "PATCH",
                f"/tickets/{ticket_id}",
                json=body.model_dump(mode="json", exclude_unset=True),
                headers={"If-Match": if_match},
            ),
            response,
        )

    @router.post(
        "/tickets/{ticket_id}/notes",
        status_code=201,
        response_model=Note,
        summary="Add an internal note",
        responses=_answers(403, 404, 409, *WITH_BODY),
    )
    async def add_note(
        ticket_id: UUID, body: NoteCreate, caller: CurrentCaller, request: Request
    ) -> Note:
        return Note.model_validate(
            await _ticket_core(
                request, caller, "POST", f"/tickets/{ticket_id}/notes", json=body.model_dump()
            )
        )

    @router.post(
        "/tickets/{ticket_id}/conversations",
        response_model=Ticket,
        summary="Link a chat conversation",
        responses=_answers(403, 404, 409, *WITH_BODY, headers=_ETAG),
    )
    async def link_conversation(
        ticket_id: UUID,
        body: ConversationLink,
        caller: CurrentCaller,
        request: Request,
        response: Response,
    ) -> Ticket:
        return _with_etag(
            await _ticket_core(
                request,
                caller,
                "POST",
                f"/tickets/{ticket_id}/conversations",
                json=body.model_dump(),
            ),
            response,
        )

    @router.delete(
        "/tickets/{ticket_id}/conversations/{conversation_id}",
        response_model=Ticket,
        summary="Unlink a chat conversation",
        responses=_answers(403, 404, 409, 422, headers=_ETAG),
    )
    async def unlink_conversation(
        ticket_id: UUID,
        conversation_id: str,
        caller: CurrentCaller,
        request: Request,
        response: Response,
    ) -> Ticket:
        return _with_etag(
            await _ticket_core(
                request,
                caller,
                "DELETE",
                f"/tickets/{ticket_id}/conversations/{_segment(conversation_id)}",
            ),
            response,
        )

    @router.delete(
        "/tickets/{ticket_id}",
        status_code=204,
        summary="Delete (owner/admin)",
        responses=_answers(403, 404, 409, 422),
    )
    async def delete_ticket(ticket_id: UUID, caller: CurrentCaller, request: Request) -> Response:
        await _ticket_core(request, caller, "DELETE", f"/tickets/{ticket_id}")
        return Response(status_code=204)

    @router.get(
        "/tickets/{ticket_id}/activity",
        response_model=ActivityPage,
        summary="A ticket's history, oldest first",
        description="Every role reads it, notes included; once a ticket is deleted its "
        "history stays readable for owners and admins only.",
        responses=_answers(404, 422),
    )
    async def ticket_activity(
        ticket_id: UUID,
        caller: CurrentCaller,
        request: Request,
        cursor: Annotated[
            str | None,
            Query(pattern=r"^[0-9]{1,9}$", description="`next_cursor` of the page before."),
        ] = None,
        type: Annotated[
            list[str] | None, Query(max_length=20, description="Only these event types.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> ActivityPage:
        # ticket-core is asked first: it owns which tickets exist in the workspace. A ticket
        # it no longer has may be a deleted one, whose history activity-log still keeps.
        try:
            await _ticket_core(request, caller, "GET", f"/tickets/{ticket_id}")
            deleted_only = False
        except UpstreamProblem as problem:
            if problem.problem.status != 404:
                raise
            deleted_only = True
        params: dict[str, Any] = {"limit": limit, "deleted_only": deleted_only}
        if cursor:
            params["cursor"] = cursor
        if type:
            params["type"] = type
        return ActivityPage.model_validate(
            await _forward(
                request.app.state.activity_log,
                caller,
                "GET",
                f"/tickets/{ticket_id}/activity",
                params=params,
            )
        )

    return router


def _member_routes() -> APIRouter:
    router = APIRouter(tags=["members"], responses=AUTHENTICATED)

    @router.get("/workspace", response_model=WorkspaceOut, tags=["workspace"], summary="Settings")
    async def get_workspace(caller: CurrentCaller, request: Request) -> WorkspaceOut:
        return WorkspaceOut.model_validate(await _ticket_core(request, caller, "GET", "/workspace"))

    @router.patch(
        "/workspace",
        response_model=WorkspaceOut,
        tags=["workspace"],
        summary="Change settings (owner/admin)",
        responses=_answers(403, *WITH_BODY),
    )
    async def change_workspace(
        body: WorkspacePatch, caller: CurrentCaller, request: Request
    ) -> WorkspaceOut:
        return WorkspaceOut.model_validate(
            await _ticket_core(request, caller, "PATCH", "/workspace", json=body.model_dump())
        )

    @router.get("/members", response_model=list[MemberOut], summary="The workspace's members")
    async def list_members(caller: CurrentCaller, request: Request) -> list[MemberOut]:
        answer = await _ticket_core(request, caller, "GET", "/members")
        return [MemberOut.model_validate(member) for member in answer]

    @router.post(
        "/members",
        status_code=201,
        response_model=MemberOut,
        summary="Add a member",
        responses=_answers(403, 409, *WITH_BODY),
    )
    async def add_member(body: MemberCreate, caller: CurrentCaller, request: Request) -> MemberOut:
        return MemberOut.model_validate(
            await _ticket_core(request, caller, "POST", "/members", json=body.model_dump())
        )

    @router.get(
        "/members/{member_id}",
        response_model=MemberOut,
        summary="One member",
        responses=_answers(404, 422),
    )
    async def get_member(member_id: UUID, caller: CurrentCaller, request: Request) -> MemberOut:
        return MemberOut.model_validate(
            await _ticket_core(request, caller, "GET", f"/members/{member_id}")
        )

    @router.patch(
        "/members/{member_id}",
        response_model=MemberOut,
        summary="Change a role",
        responses=_answers(403, 404, 409, *WITH_BODY),
    )
    async def change_role(
        member_id: UUID, body: MemberPatch, caller: CurrentCaller, request: Request
    ) -> MemberOut:
        changed = MemberOut.model_validate(
            await _ticket_core(
                request, caller, "PATCH", f"/members/{member_id}", json=body.model_dump()
            )
        )
        # This replica knows at once; the others when member.role_changed reaches them.
        request.app.state.memberships.forget(caller.workspace_id, member_id)
        return changed

    @router.delete(
        "/members/{member_id}",
        status_code=204,
        summary="Remove a member",
        responses=_answers(403, 404, 409, 422),
    )
    async def remove_member(member_id: UUID, caller: CurrentCaller, request: Request) -> Response:
        await _ticket_core(request, caller, "DELETE", f"/members/{member_id}")
        request.app.state.memberships.forget(caller.workspace_id, member_id)
        return Response(status_code=204)

    return router


def _intake_routes() -> APIRouter:
    router = APIRouter(tags=["assistants"], responses=AUTHENTICATED)
    settings_path = "/assistants/{assistant_id}/ticket-settings"

    @router.get(
        settings_path,
        response_model=AssistantTicketSettingsOut,
        summary="An assistant's ticket settings and their history (owner/admin)",
        responses=_answers(403, 404, 422),
    )
    async def get_ticket_settings(
        assistant_id: AssistantId, caller: CurrentCaller, request: Request
    ) -> AssistantTicketSettingsOut:
        return AssistantTicketSettingsOut.model_validate(
            await _intake(
                request, caller, "GET", f"/assistants/{_segment(assistant_id)}/ticket-settings"
            )
        )

    @router.put(
        settings_path,
        response_model=AssistantTicketSettingsOut,
        summary="Turn widget ticket creation on or off, require contact info, allow origins, "
        "verify visitors (owner/admin)",
        description="The answer carries the assistant's publishable `widget_key`. An "
        "assistant id another workspace configured is refused with 409 `assistant_taken`.",
        responses=_answers(403, 404, 409, *WITH_BODY),
    )
    async def put_ticket_settings(
        assistant_id: AssistantId,
        body: AssistantTicketSettings,
        caller: CurrentCaller,
        request: Request,
    ) -> AssistantTicketSettingsOut:
        return AssistantTicketSettingsOut.model_validate(
            await _intake(
                request,
                caller,
                "PUT",
                f"/assistants/{_segment(assistant_id)}/ticket-settings",
                json=body.model_dump(exclude_none=True),
            )
        )

    @router.get(
        "/assistants/{assistant_id}/ticket-requests",
        response_model=list[TicketRequestRecord],
        summary="Recent widget requests with outcome and reason (owner/admin)",
        responses=_answers(403, 404, 422),
    )
    async def list_ticket_requests(
        assistant_id: AssistantId,
        caller: CurrentCaller,
        request: Request,
        outcome: Annotated[RequestStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[TicketRequestRecord]:
        params: dict[str, Any] = {"limit": limit}
        if outcome is not None:
            params["outcome"] = outcome.value
        answer = await _intake(
            request,
            caller,
            "GET",
            f"/assistants/{_segment(assistant_id)}/ticket-requests",
            params=params,
        )
        return [TicketRequestRecord.model_validate(row) for row in answer]

    @router.post(
        "/assistants/{assistant_id}/widget-key",
        response_model=WidgetKeyOut,
        summary="Replace the assistant's widget key; the old one is refused at once (owner/admin)",
        responses=_answers(403, 404, 409, 422),
    )
    async def replace_widget_key(
        assistant_id: AssistantId, caller: CurrentCaller, request: Request
    ) -> WidgetKeyOut:
        return WidgetKeyOut.model_validate(
            await _intake(
                request, caller, "POST", f"/assistants/{_segment(assistant_id)}/widget-key"
            )
        )

    @router.post(
        "/assistants/{assistant_id}/identity-secret",
        response_model=IdentitySecretOut,
        summary="Make a new identity secret, shown this once; the old one stops verifying "
        "(owner/admin)",
        description="With `identity_verification` on, the site's server sends "
        "`contact.signature` = lowercase hex HMAC-SHA256(identity_secret, email).",
        responses=_answers(403, 404, 409, 422),
    )
    async def replace_identity_secret(
        assistant_id: AssistantId, caller: CurrentCaller, request: Request
    ) -> IdentitySecretOut:
        return IdentitySecretOut.model_validate(
            await _intake(
                request, caller, "POST", f"/assistants/{_segment(assistant_id)}/identity-secret"
            )
        )

    @router.get(
        "/assistants/{assistant_id}/ticket-request-refusals",
        response_model=RefusalCounts,
        summary="How many widget calls were refused, per reason and minute (owner/admin)",
        responses=_answers(403, 404, 422),
    )
    async def ticket_request_refusals(
        assistant_id: AssistantId,
        caller: CurrentCaller,
        request: Request,
        minutes: Annotated[int, Query(ge=1, le=1440, description="How far back, in minutes.")] = 60,
    ) -> RefusalCounts:
        return RefusalCounts.model_validate(
            await _intake(
                request,
                caller,
                "GET",
                f"/assistants/{_segment(assistant_id)}/ticket-request-refusals",
                params={"minutes": minutes},
            )
        )

    @router.get(
        "/conversations/{conversation_id}",
        response_model=ConversationOut,
        tags=["conversations"],
        summary="A conversation's messages, as intake stored them",
        responses=_answers(404, 422),
    )
    async def get_conversation(
        conversation_id: Annotated[
            str,
            Path(
                max_length=128,
                pattern=CONVERSATION_ID_PATTERN,
                description=f"The conversation's id: {CONVERSATION_ID_RULE}.",
            ),
        ],
        caller: CurrentCaller,
        request: Request,
    ) -> ConversationOut:
        return ConversationOut.model_validate(
            await _intake(request, caller, "GET", f"/conversations/{_segment(conversation_id)}")
        )

    return router


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
