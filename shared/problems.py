"""Errors as RFC 9457 problem details (`application/problem+json`) with a stable `code`.

Every service answers errors the same way, so the gateway can pass an internal service's
problem straight through to the dashboard.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

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


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_CONTENT_TYPE: {}}, "description": text}
    for status, text in {
        400: "Malformed request",
        401: "Missing or invalid token",
        403: "Not allowed for this role",
        404: "Not found in this workspace",
        409: "Conflicts with the current state",
        412: "Stale If-Match",
        413: "Request body too large",
        422: "Validation failed",
    }.items()
}


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)
        return problem_response(error.problem, error.headers)

    async def on_validation(_request: Request, error: Exception) -> JSONResponse:
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

    async def on_http(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return problem_response(
            Problem(
                title=str(error.detail),
                status=error.status_code,
                code=code,
                detail=str(error.detail),
            ),
            dict(error.headers) if error.headers else None,
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
