"""intake's public widget API (`/widget/v1`, no login): the only routes served on the
widget's address, the one listener of the system that faces strangers' browsers."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.contracts.widget import (
    NO_NUL,
    ConversationMessages,
    RejectionReason,
    RequestStatus,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)
from shared.problems import Problem, problem_response

from .. import handlers
from ..bootstrap import Intake

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


async def on_invalid_request(request: Request, error: Exception) -> JSONResponse:
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


def _service(request: Request) -> Intake:
    service: Intake = request.app.state.service
    return service


async def on_not_found(_request: Request, error: Exception) -> JSONResponse:
    return problem_response(
        Problem(title="Not found", status=404, code="not_found", detail=str(error))
    )


async def on_not_allowed(_request: Request, error: Exception) -> JSONResponse:
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


def widget_routes() -> APIRouter:
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
