"""The gateway's one way to forward: a public route is a `Forward` entry (method, path, the
service that owns it, its models and answers), and `forwarding_router` turns entries into
FastAPI routes that authenticate the caller, call the owning service with the caller's
credential, and answer with its result (or pass its problem on)."""

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from string import Formatter
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, TypeAdapter

from shared.contracts.formats import ETAG_PATTERN, etag
from shared.problems import ProblemError, problem_response_doc, problem_responses

from .auth import UNAUTHENTICATED, Caller, CurrentCaller
from .upstream import Upstream, UpstreamProblem

PUBLIC_PREFIX = "/api/v1"
# A route that takes input (path, query, header or body) can be refused for it; one with a JSON
# body also for the body being malformed or too large.
WITH_INPUT = (422,)
WITH_BODY = (400, 413, 422)
# A change to something of the workspace (a ticket, a member, an assistant's settings): refused
# to a role that may not make it (403), for what the workspace does not have (404), or by its
# current state (409).
CHANGE_REFUSALS = (403, 404, 409)
# Header values passed on to an internal service: what an HTTP header can carry as text.
PRINTABLE_ASCII = r"^[ -~]*$"

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
        "An internal service (`upstream_unavailable`, with `Retry-After`), a service's "
        "database or broker (`dependency_unavailable`, with `Retry-After`), the broker the "
        "live stream reads "
        "(`stream_unavailable`, with `Retry-After`) or the token issuer's signing keys "
        "(`signing_keys_unavailable`) cannot be reached right now; retry in a moment",
    ),
}
ETAG_HEADER = {
    "ETag": {
        "description": "The ticket's `version`, quoted; send it back as `If-Match`.",
        "required": True,
        "schema": {"type": "string", "pattern": ETAG_PATTERN},
    }
}
LOCATION_HEADER = {
    "Location": {
        "description": "The new ticket's URL.",
        "required": True,
        "schema": {"type": "string"},
    }
}

# What runs after a successful forward, e.g. dropping a cached membership the call changed.
AfterForward = Callable[[Request, Caller, dict[str, Any]], None]


@dataclass(frozen=True, kw_only=True)
class Forward:
    """One public route, forwarded as is to `upstream` (`ticket_core`, `activity_log` or
    `intake`: the app state's name of that service) at `/internal/v1` + `path`."""

    name: str  # the endpoint's name, hence its OpenAPI operationId
    method: str
    path: str
    upstream: str
    summary: str
    response_model: Any = None  # None: 204 without a body
    # What the workspace's state or the caller's role refuses (403, 404, 409, 412); the refusals
    # of the input itself follow from what the route takes (`input_refusals`).
    refusals: tuple[int, ...] = ()
    description: str | None = None
    tags: tuple[str, ...] = ()
    status_code: int = 200
    path_params: dict[str, Any] = field(default_factory=dict)
    body: type[BaseModel] | None = None
    body_dump: dict[str, Any] = field(default_factory=dict)  # model_dump's options
    query: type[BaseModel] | None = None
    headers: dict[str, Any] = field(default_factory=dict)  # python name -> Annotated[.., Header]
    etag: bool = False  # the answer is a ticket: its version goes in `ETag`
    location: bool = False  # the answer is a new ticket: its URL goes in `Location`
    after: AfterForward | None = None
    # OpenAPI links of the success answer: where a client (or schemathesis' stateful phase)
    # goes next with what it got, e.g. from a created ticket to its notes.
    links: dict[str, Any] = field(default_factory=dict)

    def answers(self) -> dict[int | str, dict[str, Any]]:
        """The route's answers for the OpenAPI document."""
        answers = {**AUTHENTICATED, **problem_responses(*self.refusals, *self.input_refusals())}
        headers = {
            **(ETAG_HEADER if self.etag else {}),
            **(LOCATION_HEADER if self.location else {}),
        }
        success: dict[str, Any] = {}
        if headers:
            success["headers"] = headers
        if self.links:
            success["links"] = self.links
        if success:
            answers[self.status_code] = success
        return answers

    def input_refusals(self) -> tuple[int, ...]:
        """What the route's input can be refused with, as FastAPI validates it."""
        if self.body is not None:
            return WITH_BODY
        if self.path_params or self.query is not None or self.headers:
            return WITH_INPUT
        return ()


@dataclass(frozen=True)
class ForwardTo:
    """Builds the `Forward` entries of the routes one service owns: the service, the tags and
    the types of the path's parameters are said here once, each entry says only its own
    method, path, name and answers."""

    upstream: str
    path_params: dict[str, Any] = field(default_factory=dict)  # by name, as `{name}` in paths
    tags: tuple[str, ...] = ()
    # The model whose answers carry their version in `ETag` (a ticket), wherever it is answered.
    versioned: Any = None

    def get(self, path: str, name: str, **details: Any) -> Forward:
        return self.route("GET", path, name, **details)

    def post(self, path: str, name: str, **details: Any) -> Forward:
        return self.route("POST", path, name, **details)

    def put(self, path: str, name: str, **details: Any) -> Forward:
        return self.route("PUT", path, name, **details)

    def patch(self, path: str, name: str, **details: Any) -> Forward:
        return self.route("PATCH", path, name, **details)

    def delete(self, path: str, name: str, **details: Any) -> Forward:
        return self.route("DELETE", path, name, **details)

    def route(self, method: str, path: str, name: str, **details: Any) -> Forward:
        in_path = [param for _, param, _, _ in Formatter().parse(path) if param]
        versioned = self.versioned is not None and details.get("response_model") is self.versioned
        return Forward(
            name=name,
            method=method,
            path=path,
            upstream=self.upstream,
            path_params={param: self.path_params[param] for param in in_path},
            etag=versioned,
            **{"tags": self.tags, **details},  # an entry may name tags of its own
        )


def operation_id(name: str, method: str, path: str) -> str:
    """The operationId FastAPI gives a route of the public API (its `generate_unique_id`)."""
    return re.sub(r"\W", "_", f"{name}{PUBLIC_PREFIX}{path}") + f"_{method.lower()}"


def forwarding_router(entries: list[Forward], *, tag: str) -> APIRouter:
    router = APIRouter(tags=[tag])
    for entry in entries:
        router.add_api_route(
            entry.path,
            _endpoint(entry),
            methods=[entry.method],
            status_code=entry.status_code,
            response_model=entry.response_model,
            summary=entry.summary,
            description=entry.description or "",
            tags=list(entry.tags),
            responses=entry.answers(),
        )
    return router


def _endpoint(entry: Forward) -> Callable[..., Any]:
    """The route's function, with a signature FastAPI reads its parameters from."""
    answer_type = TypeAdapter(entry.response_model) if entry.response_model is not None else None

    async def endpoint(request: Request, response: Response, caller: Caller, **values: Any) -> Any:
        upstream: Upstream = getattr(request.app.state, entry.upstream)
        path = entry.path.format(
            **{name: _segment(str(values[name])) for name in entry.path_params}
        )
        body = values.get("body")
        query = values.get("query")
        answer = await forward(
            upstream,
            caller,
            entry.method,
            path,
            json=body.model_dump(**entry.body_dump) if body is not None else None,
            params=query.model_dump(mode="json", exclude_none=True) if query else None,
            headers={name.replace("_", "-"): values[name] for name in entry.headers},
        )
        if entry.after is not None:
            entry.after(request, caller, values)
        if answer_type is None:
            return Response(status_code=204)
        result = answer_type.validate_python(answer)
        if entry.etag:
            response.headers["ETag"] = etag(result.version)
        if entry.location:
            response.headers["Location"] = f"/api/v1{entry.path}/{result.id}"
        return result

    endpoint.__name__ = entry.name
    endpoint.__signature__ = inspect.Signature(list(_parameters(entry)))  # type: ignore[attr-defined]
    return endpoint


def _parameters(entry: Forward) -> Iterator[inspect.Parameter]:
    def parameter(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> Any:
        return inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
        )

    yield parameter("request", Request)
    yield parameter("response", Response)
    yield parameter("caller", CurrentCaller)
    for name, annotation in entry.path_params.items():
        yield parameter(name, annotation)
    if entry.body is not None:
        yield parameter("body", entry.body)
    if entry.query is not None:
        yield parameter("query", Annotated[entry.query, Query()])
    for name, annotation in entry.headers.items():
        yield parameter(name, annotation, None)


async def forward(
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


# What the document says of every text the API takes (`_refuse_nul` enforces it), given to the
# strings that state no pattern of their own; the patterns this API states exclude NUL too.
NO_NUL_PATTERN = "^[^\\x00]*$"


def state_no_nul(document: dict[str, Any]) -> None:
    """Give every plain string a request can carry (parameters, bodies and the schemas they
    refer to) the pattern `NO_NUL_PATTERN`. Answers are left alone: a problem may quote what
    it refuses."""
    components = document.get("components", {}).get("schemas", {})
    pending: list[Any] = []
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                pending += [
                    parameter.get("schema") for parameter in operation.get("parameters", [])
                ]
                body = operation.get("requestBody", {}).get("content", {})
                pending += [media.get("schema") for media in body.values()]
    seen: set[str] = set()
    while pending:
        for name in _mark_no_nul(pending.pop()):
            if name not in seen and name in components:
                seen.add(name)
                pending.append(components[name])


def _mark_no_nul(schema: Any) -> Iterator[str]:
    """Marks the plain strings in `schema`; yields the component names it refers to."""
    if isinstance(schema, list):
        for item in schema:
            yield from _mark_no_nul(item)
    elif isinstance(schema, dict):
        if schema.get("type") == "string" and not schema.keys() & {"pattern", "enum", "format"}:
            schema["pattern"] = NO_NUL_PATTERN
        reference = schema.get("$ref")
        if isinstance(reference, str):
            yield reference.rsplit("/", 1)[-1]
        for value in schema.values():
            yield from _mark_no_nul(value)


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
