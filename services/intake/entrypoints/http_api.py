"""intake's HTTP app: the public widget API (`/widget/v1`, no login) and the internal API the
gateway uses for the dashboard (`/internal/v1`: settings, diagnostics, conversations)."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.background import service_lifespan
from shared.contracts.api import Role
from shared.contracts.widget import (
    NO_NUL,
    AssistantSettingsChange,
    AssistantTicketSettings,
    AssistantTicketSettingsOut,
    ConversationMessages,
    ConversationOut,
    RejectionReason,
    RequestStatus,
    TicketRequestRecord,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)
from shared.http import (
    MEMBER_HEADER,
    ROLE_HEADER,
    WORKSPACE_HEADER,
    broker_check,
    create_service_app,
    database_check,
)
from shared.problems import PROBLEM_RESPONSES, Problem, problem_response

from .. import handlers
from ..bootstrap import Intake, bootstrap
from ..domain.requests import NotAllowed
from ..settings import IntakeSettings

REASON_STATUS: dict[RejectionReason, int] = {
    RejectionReason.INVALID_REQUEST: 422,
    RejectionReason.UNKNOWN_ASSISTANT: 404,
    RejectionReason.TICKET_CREATION_DISABLED: 403,
    RejectionReason.CONTACT_INFO_REQUIRED: 422,
    RejectionReason.INVALID_CONTACT: 422,
    RejectionReason.CONVERSATION_TOO_LARGE: 413,
    RejectionReason.INVALID_CONVERSATION: 422,
    RejectionReason.RATE_LIMITED: 429,
    RejectionReason.REQUEST_ID_REUSED: 409,
}

WIDGET_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": "Refused; `reason` says why (stable code)."}
    for status in sorted(set(REASON_STATUS.values()))
}


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    service = bootstrap(settings)
    app = create_service_app(
        title="intake",
        description="Widget ticket requests: `/widget/v1` is public, `/internal/v1` internal.",
        lifespan=service_lifespan(
            service.broker,
            service.engine,
            [service.relay, service.expirer],
            also_dispose=[service.read_engine],
        ),
        readiness_checks={
            "database": database_check(service.engine),
            "broker": broker_check(service.broker),
        },
    )
    app.state.service = service
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(handlers.NotFound, _on_not_found)
    app.add_exception_handler(NotAllowed, _on_not_allowed)
    app.include_router(_widget_routes(), prefix="/widget/v1")
    app.include_router(_internal_routes(), prefix="/internal/v1")
    return app


def _service(request: Request) -> Intake:
    service: Intake = request.app.state.service
    return service


async def _on_invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
        for e in error.errors()
    ]
    malformed = any(e["type"] == "json_invalid" for e in error.errors())
    detail = (
        "The body is not valid JSON; send a JSON object."
        if malformed
        else "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
    )
    return problem_response(
        Problem.model_validate(
            {
                "title": "Invalid request",
                "status": 400 if malformed else 422,
                "code": RejectionReason.INVALID_REQUEST.value,
                "reason": RejectionReason.INVALID_REQUEST.value,
                "detail": detail,
                "errors": None if malformed else errors,
            }
        )
    )


async def _on_not_found(_request: Request, error: Exception) -> JSONResponse:
    return problem_response(
        Problem(title="Not found", status=404, code="not_found", detail=str(error))
    )


async def _on_not_allowed(_request: Request, error: Exception) -> JSONResponse:
    return problem_response(
        Problem(title="Forbidden", status=403, code="forbidden", detail=str(error))
    )


def _widget_answer(answer: WidgetRequestAnswer, response: Response) -> Any:
    if answer.status is RequestStatus.REJECTED and answer.reason in REASON_STATUS:
        assert answer.reason is not None
        return problem_response(
            Problem.model_validate(
                {
                    "title": "Ticket request refused",
                    "status": REASON_STATUS[answer.reason],
                    "code": answer.reason.value,
                    "reason": answer.reason.value,
                    "detail": answer.detail or answer.reason.value,
                    "request_id": answer.request_id,
                }
            )
        )
    response.status_code = 202 if answer.status is RequestStatus.PENDING else 200
    return answer


def _widget_routes() -> APIRouter:
    router = APIRouter(tags=["widget"])

    @router.post(
        "/ticket-requests",
        status_code=202,
        response_model=WidgetRequestAnswer,
        responses=WIDGET_REFUSALS,
        summary="Ask for a ticket from this conversation",
        description="202 `pending` while the ticket is made (poll the GET), or a refusal "
        "with a `reason`. Sending the same `request_id` again returns the same answer.",
    )
    async def post_ticket_request(
        body: WidgetTicketRequest, request: Request, response: Response
    ) -> Any:
        service = _service(request)
        answer = await handlers.receive_request(service.unit_of_work(), body, service.limits)
        return _widget_answer(answer, response)

    @router.get(
        "/ticket-requests/{request_id}",
        response_model=WidgetRequestAnswer,
        responses={404: {"model": Problem}},
        summary="Where a ticket request stands",
    )
    async def get_ticket_request(
        request_id: Annotated[str, Path(max_length=100, pattern=NO_NUL)], request: Request
    ) -> WidgetRequestAnswer:
        return await handlers.request_status(_service(request).reader(), request_id)

    @router.post(
        "/conversations/{conversation_id}/messages",
        summary="Later messages of a conversation already sent",
        responses={404: {"model": Problem}},
    )
    async def add_messages(
        conversation_id: Annotated[str, Path(max_length=128, pattern=NO_NUL)],
        body: ConversationMessages,
        request: Request,
    ) -> dict[str, int]:
        added = await handlers.add_messages(
            _service(request).unit_of_work(), body.assistant_id, conversation_id, body.messages
        )
        return {"added": added}

    return router


WorkspaceId = Annotated[UUID, Header(alias=WORKSPACE_HEADER)]
MemberId = Annotated[UUID, Header(alias=MEMBER_HEADER)]
CallerRole = Annotated[Role, Header(alias=ROLE_HEADER)]
AssistantId = Annotated[str, Path(min_length=1, max_length=100)]


def _internal_routes() -> APIRouter:
    router = APIRouter(tags=["assistants"], responses=PROBLEM_RESPONSES)

    @router.get(
        "/assistants/{assistant_id}/ticket-settings", response_model=AssistantTicketSettingsOut
    )
    async def get_settings(
        assistant_id: AssistantId, workspace_id: WorkspaceId, role: CallerRole, request: Request
    ) -> AssistantTicketSettingsOut:
        settings, history = await handlers.get_settings(
            _service(request).reader(), workspace_id, role, assistant_id
        )
        return AssistantTicketSettingsOut(
            assistant_id=assistant_id,
            ticket_creation_enabled=settings.ticket_creation_enabled,
            require_contact_info=settings.require_contact_info,
            history=[AssistantSettingsChange.model_validate(dict(row)) for row in history],
        )

    @router.put(
        "/assistants/{assistant_id}/ticket-settings", response_model=AssistantTicketSettingsOut
    )
    async def put_settings(
        assistant_id: AssistantId,
        body: AssistantTicketSettings,
        workspace_id: WorkspaceId,
        member_id: MemberId,
        role: CallerRole,
        request: Request,
    ) -> AssistantTicketSettingsOut:
        service = _service(request)
        await handlers.put_settings(
            service.unit_of_work(), workspace_id, member_id, role, assistant_id, body
        )
        return await get_settings(assistant_id, workspace_id, role, request)

    @router.get(
        "/assistants/{assistant_id}/ticket-requests", response_model=list[TicketRequestRecord]
    )
    async def list_requests(
        assistant_id: AssistantId,
        workspace_id: WorkspaceId,
        role: CallerRole,
        request: Request,
        outcome: Annotated[RequestStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[TicketRequestRecord]:
        return await handlers.list_requests(
            _service(request).reader(), workspace_id, role, assistant_id, outcome, limit
        )

    @router.get(
        "/conversations/{conversation_id}", response_model=ConversationOut, tags=["conversations"]
    )
    async def get_conversation(
        conversation_id: Annotated[str, Path(max_length=128)],
        workspace_id: WorkspaceId,
        request: Request,
    ) -> ConversationOut:
        return await handlers.get_conversation(
            _service(request).reader(), workspace_id, conversation_id
        )

    return router
