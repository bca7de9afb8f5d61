"""Errors as RFC 9457 problem details (`application/problem+json`) with a stable `code`.

Every service answers errors the same way, so the gateway can pass an internal service's
problem straight through to the dashboard.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from shared.contracts.formats import PROBLEM_CODE

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An error answer: `code` is stable and meant for programs, `detail` for people."""

    model_config = ConfigDict(extra="allow")  # e.g. the widget API's `reason`, `request_id`

    type: str = Field(default="about:blank")
    title: str
    status: int
    code: str = Field(description="Stable machine-readable error code.", examples=["not_found"])
    detail: str = Field(description="What was wrong and how to fix it.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field validation problems, when there are any."
    )


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            title=title or code.replace("_", " ").capitalize(),
            status=status,
            code=code,
            detail=detail,
            errors=errors,
        )
        self.headers = headers


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


# An exception handler of FastAPI's (`app.add_exception_handler`).
ExceptionHandler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def answer_as_problem(status: int, code: str, title: str) -> ExceptionHandler:
    """The handler for an error a service answers as one fixed problem, the error's message
    being its `detail`."""

    async def on_error(_request: Request, error: Exception) -> JSONResponse:
        return problem_response(Problem(title=title, status=status, code=code, detail=str(error)))

    return on_error


PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request",
    401: "Missing or invalid token",
    403: "Not allowed for this role",
    404: "Not found in this workspace",
    409: "Conflicts with the current state",
    412: "Stale If-Match",
    413: "Request body too large",
    422: "Validation failed",
    500: "Something broke on our side; quote the `X-Request-Id` when you report it",
}


def problem_response_doc(status: int, description: str | None = None) -> dict[str, Any]:
    """One documented problem answer, for a route's `responses`. FastAPI puts the model's
    schema under `application/json`; `problem_json_in_openapi` moves it to the media type
    that is actually sent, `application/problem+json`."""
    return {"model": Problem, "description": description or PROBLEM_DESCRIPTIONS[status]}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented problem answers of a route that can answer these statuses."""
    return {status: problem_response_doc(status) for status in statuses}


# Every problem status a service can answer; a route that answers only some of them documents
# those with `problem_responses(...)`.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = problem_responses(*PROBLEM_DESCRIPTIONS)

_PROBLEM_REF = "#/components/schemas/Problem"


def problem_json_in_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Documents every error answer whose body is a `Problem` as `application/problem+json`
    (the media type `problem_response` sends) instead of FastAPI's `application/json`."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for status, answer in operation.get("responses", {}).items():
                if str(status)[:1] not in ("4", "5"):
                    continue
                content = answer.get("content", {})
                json_body = content.get("application/json")
                if json_body is not None and json_body.get("schema") == {"$ref": _PROBLEM_REF}:
                    del content["application/json"]
                    content.setdefault(PROBLEM_CONTENT_TYPE, {})["schema"] = {"$ref": _PROBLEM_REF}
    return document


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)
        return problem_response(error.problem, error.headers)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        headers = dict(error.headers) if error.headers else {}
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(
            Problem(
                title=str(error.detail),
                status=error.status_code,
                code=code,
                detail=str(error.detail),
            ),
            headers or None,
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


async def _on_validation(_request: Request, error: Exception) -> JSONResponse:
    """A request FastAPI could not read into its models: 400 for JSON that is not JSON, else
    422 with every field's refusal (and a format's own code when it is the only one)."""
    assert isinstance(error, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(part) for part in item["loc"] if part != "body"),
            "message": item["msg"],
            "type": item["type"],
        }
        for item in error.errors()
    ]
    malformed = any(item["type"] == "json_invalid" for item in error.errors())
    if malformed:
        return problem_response(
            Problem(
                title="Malformed JSON",
                status=400,
                code="malformed_json",
                detail="The request body is not valid JSON; send a JSON object.",
            )
        )
    # Refusals of a format with its own code (shared/contracts/formats.py) keep that code.
    codes = {(item.get("ctx") or {}).get(PROBLEM_CODE) for item in error.errors()}
    if len(codes) == 1 and (code := codes.pop()):
        return problem_response(
            Problem(
                title=code.replace("_", " ").capitalize(),
                status=422,
                code=code,
                detail=" ".join(e["message"] for e in errors),
                errors=errors,
            )
        )
    summary = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
    return problem_response(
        Problem(
            title="Validation failed",
            status=422,
            code="validation_failed",
            detail=f"The request is not valid: {summary}",
            errors=errors,
        )
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method the app's OpenAPI document lists for this path. Starlette's own 405
    names only the methods of the first route whose path matches, though several routes share
    a path (one per method)."""
    app = request.app
    paths: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "_allow", None)
    if paths is None:
        paths = [
            (compile_path(path)[0], {method.upper() for method in item})
            for path, item in app.openapi().get("paths", {}).items()
        ]
        app.state._allow = paths
    methods: set[str] = set()
    for pattern, declared in paths:
        if pattern.match(request.url.path):
            methods |= declared
    return sorted(methods)
