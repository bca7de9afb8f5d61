"""intake's public widget API (`/widget/v1`, no login): the only routes served on the
widget's address, the one listener of the system that faces strangers' browsers.

Every call is checked before anything is stored, cheapest first: the body's size (the
listener's limit), the widget key (`X-Widget-Key`), the page's `Origin` against the
assistant's `allowed_origins`, the client address's token bucket, the assistant's token
bucket; then the body's fields, then the assistant's rules. CORS answers only origins the
call's assistant accepts; see `WidgetCors` for preflights, which carry no key.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.contracts.conversation_ids import (
    CONVERSATION_ID_MAX_LENGTH,
    CONVERSATION_ID_PATTERN,
    is_conversation_id,
)
from shared.contracts.widget import (
    NO_NUL,
    WIDGET_KEY_HEADER,
    ConversationMessages,
    RejectionReason,
    RequestStatus,
    WidgetAssistantSettings,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)
from shared.problems import Problem, answer_as_problem, problem_response

from .. import handlers
from ..bootstrap import Intake
from ..domain.requests import AssistantSettings, Refused
from ..domain.widget_access import client_address, origin_allowed

REASON_STATUS: dict[RejectionReason, int] = {
    RejectionReason.INVALID_REQUEST: 422,
    RejectionReason.INVALID_WIDGET_KEY: 401,
    RejectionReason.ORIGIN_NOT_ALLOWED: 403,
    RejectionReason.CONTACT_NOT_VERIFIED: 403,
    RejectionReason.UNKNOWN_ASSISTANT: 404,
    RejectionReason.TICKET_CREATION_DISABLED: 403,
    RejectionReason.CONTACT_INFO_REQUIRED: 422,
    RejectionReason.INVALID_CONTACT: 422,
    RejectionReason.CONVERSATION_TOO_LARGE: 413,
    RejectionReason.INVALID_CONVERSATION: 422,
    RejectionReason.RATE_LIMITED: 429,
    RejectionReason.REQUEST_ID_REUSED: 409,
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "With 429: seconds until the bucket has room again.",
        "schema": {"type": "integer"},
    }
}


def _refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        codes = [f"`{r.value}`" for r, s in REASON_STATUS.items() if s == status]
        if status == 413:
            codes.append("`body_too_large` (the listener's limit)")
        answer: dict[str, Any] = {
            "model": Problem,
            "description": f"Refused; `code` says why: {', '.join(codes)}.",
        }
        if status == 429:
            answer["headers"] = _RETRY_AFTER
        answers[status] = answer
    return answers


# Every call: the key, the origin, the limits, and the listener's body limit.
GATE_REFUSALS = (401, 403, 413, 429)
WIDGET_REFUSALS = _refusals(*GATE_REFUSALS, *REASON_STATUS.values())

# Which field a validation error is in says which reason the widget gets.
_FIELD_REASONS: tuple[tuple[tuple[str, ...], RejectionReason], ...] = (
    (("conversation", "messages"), RejectionReason.CONVERSATION_TOO_LARGE),
    (("messages",), RejectionReason.CONVERSATION_TOO_LARGE),  # the messages path
    (("conversation", "id"), RejectionReason.INVALID_CONVERSATION),
    (("contact",), RejectionReason.INVALID_CONTACT),
)
_TOO_LONG = frozenset({"string_too_long", "too_long"})


def _reason_for(errors: list[dict[str, Any]]) -> RejectionReason:
    for error in errors:
        if error["type"] == "missing":
            continue  # not the field's value: the request is not a request at all
        location = tuple(str(p) for p in error["loc"] if p != "body")
        for prefix, reason in _FIELD_REASONS:
            if location[: len(prefix)] != prefix:
                continue
            if reason is not RejectionReason.CONVERSATION_TOO_LARGE or error["type"] in _TOO_LONG:
                return reason
    return RejectionReason.INVALID_REQUEST


def _ids_of(body: Any) -> tuple[str | None, str | None]:
    """The request id and conversation id of an invalid body, where they are valid, so that
    the admin can find the refusal by them."""
    if not isinstance(body, dict):
        return None, None
    request_id = body.get("request_id")
    conversation = body.get("conversation")
    conversation_id = conversation.get("id") if isinstance(conversation, dict) else None
    return (
        request_id
        if isinstance(request_id, str) and 0 < len(request_id) <= 100 and "\x00" not in request_id
        else None,
        conversation_id
        if isinstance(conversation_id, str) and is_conversation_id(conversation_id)
        else None,
    )


async def on_invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    raw = error.errors()
    errors = [
        # `input` is left out on purpose: it could be a megabyte of someone's text.
        {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
        for e in raw
    ]
    malformed = any(e["type"] == "json_invalid" for e in raw)
    reason = RejectionReason.INVALID_REQUEST if malformed else _reason_for(list(raw))
    detail = (
        "The body is not valid JSON; send a JSON object."
        if malformed
        else "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
    )[:2_000]
    status = 400 if malformed else REASON_STATUS[reason]
    assistant: AssistantSettings | None = getattr(request.state, "assistant", None)
    if assistant is not None:
        handlers.record_refusal(
            _service(request).guard,
            Refused(reason, detail),
            assistant.assistant_id,
            *_ids_of(error.body),
        )
    return problem_response(
        Problem.model_validate(
            {
                "title": "Invalid request",
                "status": status,
                "code": reason.value,
                "reason": reason.value,
                "detail": detail,
                "errors": None if malformed else errors[:20],
            }
        )
    )


def _service(request: Request) -> Intake:
    service: Intake = request.app.state.service
    return service


on_not_found = answer_as_problem(404, "not_found", "Not found")
on_not_allowed = answer_as_problem(403, "forbidden", "Forbidden")


def refusal_response(refusal: Refused, request_id: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "title": "Widget call refused",
        "status": REASON_STATUS[refusal.reason],
        "code": refusal.reason.value,
        "reason": refusal.reason.value,
        "detail": refusal.detail,
    }
    if request_id is not None:
        body["request_id"] = request_id
    headers = (
        {"Retry-After": str(refusal.retry_after_seconds)}
        if refusal.retry_after_seconds is not None
        else None
    )
    return problem_response(Problem.model_validate(body), headers)


async def on_refused(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Refused)
    return refusal_response(error)


def caller_address(request: Request) -> str:
    peer = request.client.host if request.client else None
    return client_address(
        peer, request.headers.get("x-forwarded-for"), _service(request).guard.trusted_proxies
    )


def _gate(kind: str) -> Any:
    async def admitted(request: Request) -> AssistantSettings:
        """Runs before the body's fields are validated: a caller without the key learns
        nothing about the body and costs no more than a key lookup."""
        service = _service(request)
        assistant = await handlers.admit_widget_call(
            service.reader(),
            service.guard,
            widget_key=request.headers.get(WIDGET_KEY_HEADER),
            origin=request.headers.get("origin"),
            address=caller_address(request),
            kind="write" if kind == "write" else "read",
        )
        request.state.assistant = assistant  # for CORS and for counting invalid bodies
        return assistant

    return admitted


Writer = Annotated[AssistantSettings, Depends(_gate("write"))]
Reader = Annotated[AssistantSettings, Depends(_gate("read"))]


def _widget_answer(answer: WidgetRequestAnswer, response: Response) -> Any:
    if answer.status is RequestStatus.REJECTED and answer.reason in REASON_STATUS:
        assert answer.reason is not None
        return refusal_response(
            Refused(answer.reason, answer.detail or answer.reason.value), answer.request_id
        )
    response.status_code = 202 if answer.status is RequestStatus.PENDING else 200
    return answer


KEY_DOC = (
    f"Send the assistant's widget key as `{WIDGET_KEY_HEADER}` (missing or wrong: 401 "
    "`invalid_widget_key`). With `allowed_origins` set, a page of another origin is refused "
    "(403 `origin_not_allowed`). Limits per client address and per assistant: 429 "
    "`rate_limited` with `Retry-After`."
)


# The key is read by the gate itself (before the body), so it is documented here.
KEY_PARAMETER: dict[str, Any] = {
    "parameters": [
        {
            "name": WIDGET_KEY_HEADER,
            "in": "header",
            "required": True,
            "description": "The assistant's publishable widget key (its ticket settings).",
            "schema": {"type": "string", "maxLength": 100, "examples": ["wk_3q2..."]},
        }
    ]
}


class WidgetCors:
    """CORS for the widget API. A preflight (`OPTIONS` with `Access-Control-Request-Method`)
    carries no key, so it cannot know the assistant: it is answered when some assistant
    accepts the origin (lists it, or lists none), else 403 `origin_not_allowed` without CORS
    headers. A call's answer carries `Access-Control-Allow-Origin` only when the call's own
    assistant accepts its origin, so a page of another origin can read no answer at all."""

    ALLOW_HEADERS = f"Content-Type, {WIDGET_KEY_HEADER}, X-Request-Id"
    EXPOSE_HEADERS = "Retry-After, X-Request-Id"

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        origin = request.headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            answer = await self._preflight(request, origin)
            await answer(scope, receive, send)
            return

        async def with_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                assistant: AssistantSettings | None = scope.get("state", {}).get("assistant")
                headers = list(message.get("headers", []))
                headers.append((b"vary", b"Origin"))
                if assistant is not None and origin_allowed(origin, assistant.allowed_origins):
                    headers += [
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-expose-headers", self.EXPOSE_HEADERS.encode()),
                    ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_cors)

    async def _preflight(self, request: Request, origin: str) -> Response:
        service = _service(request)
        allowed = await handlers.admit_preflight(
            service.reader(), service.guard, origin=origin, address=caller_address(request)
        )
        if not allowed:
            return refusal_response(
                Refused(
                    RejectionReason.ORIGIN_NOT_ALLOWED,
                    f"No assistant accepts pages of {origin[:80]!r}; an admin can add the site "
                    "to the assistant's allowed_origins.",
                )
            )
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": self.ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )


def widget_routes() -> APIRouter:
    router = APIRouter(tags=["widget"])
    router.add_api_route(
        "/ticket-requests",
        post_ticket_request,
        methods=["POST"],
        status_code=202,
        response_model=WidgetRequestAnswer,
        responses=WIDGET_REFUSALS,
        summary="Ask for a ticket from this conversation",
        description="202 `pending` while the ticket is made (poll the GET), or a refusal "
        "with a `reason`. Sending the same `request_id` again returns the same answer. " + KEY_DOC,
        openapi_extra=KEY_PARAMETER,
    )
    router.add_api_route(
        "/settings",
        get_settings,
        response_model=WidgetAssistantSettings,
        responses=_refusals(*GATE_REFUSALS),
        summary="The key's assistant: ticket creation on, contact info required",
        description="Lets the widget ask for a name and an email before the visitor's request "
        "instead of after its refusal. " + KEY_DOC,
        openapi_extra=KEY_PARAMETER,
    )
    router.add_api_route(
        "/ticket-requests/{request_id}",
        get_ticket_request,
        response_model=WidgetRequestAnswer,
        responses={**_refusals(*GATE_REFUSALS), 404: {"model": Problem}},
        summary="Where a ticket request stands",
        description="Only a request of the key's assistant. " + KEY_DOC,
        openapi_extra=KEY_PARAMETER,
    )
    router.add_api_route(
        "/conversations/{conversation_id}/messages",
        add_messages,
        methods=["POST"],
        summary="Later messages of a conversation already sent",
        responses={**_refusals(*GATE_REFUSALS, 422), 404: {"model": Problem}},
        description="At most 50 messages per call, 4,000 characters each, 1,000 per "
        "conversation (413 `conversation_too_large`). " + KEY_DOC,
        openapi_extra=KEY_PARAMETER,
    )
    return router


async def post_ticket_request(
    assistant: Writer, body: WidgetTicketRequest, request: Request, response: Response
) -> Any:
    answer = await _service(request).request_groups.receive(
        body, request.headers.get(WIDGET_KEY_HEADER)
    )
    return _widget_answer(answer, response)


async def get_settings(assistant: Reader) -> WidgetAssistantSettings:
    return WidgetAssistantSettings(
        assistant_id=assistant.assistant_id,
        ticket_creation_enabled=assistant.ticket_creation_enabled,
        require_contact_info=assistant.require_contact_info,
        identity_verification=assistant.identity_verification,
    )


async def get_ticket_request(
    request_id: Annotated[str, Path(max_length=100, pattern=NO_NUL)],
    assistant: Reader,
    request: Request,
) -> WidgetRequestAnswer:
    return await handlers.request_status(
        _service(request).reader(), request_id, assistant.assistant_id
    )


async def add_messages(
    conversation_id: Annotated[
        str, Path(max_length=CONVERSATION_ID_MAX_LENGTH, pattern=CONVERSATION_ID_PATTERN)
    ],
    assistant: Writer,
    body: ConversationMessages,
    request: Request,
) -> dict[str, int]:
    service = _service(request)
    added = await handlers.add_messages(
        service.unit_of_work(),
        service.guard,
        request.headers.get(WIDGET_KEY_HEADER),
        body.assistant_id,
        conversation_id,
        body.messages,
    )
    return {"added": added}
