"""Who is calling: a valid bearer token for a member that ticket-core still knows.

The token names the member and the workspace; the role is ticket-core's, read per request.
"""

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth import InvalidToken, read_token
from shared.contracts.api import MemberOut, Role
from shared.problems import ProblemError

from .upstream import Upstream, UpstreamProblem

bearer = HTTPBearer(auto_error=False, description="JWT from `helpdesk token`")

UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Caller:
    member_id: UUID
    workspace_id: UUID
    role: Role
    request_id: str | None


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None:
        raise ProblemError(
            401,
            "missing_token",
            "Send `Authorization: Bearer <token>`; get a token with `helpdesk token`.",
            headers=UNAUTHENTICATED,
        )
    try:
        claims = read_token(credentials.credentials, request.app.state.settings.jwt_secret)
    except InvalidToken as error:
        raise ProblemError(401, "invalid_token", str(error), headers=UNAUTHENTICATED) from error
    ticket_core: Upstream = request.app.state.ticket_core
    try:
        member = MemberOut.model_validate(
            await ticket_core.call(
                "GET", f"/internal/v1/members/{claims.member_id}", workspace_id=claims.workspace_id
            )
        )
    except UpstreamProblem as problem:
        if problem.problem.status in (401, 404):
            raise ProblemError(
                401,
                "unknown_member",
                "The token's member is not (or no longer) in that workspace; "
                "ask an owner to add you, then get a new token.",
                headers=UNAUTHENTICATED,
            ) from problem
        raise
    return Caller(
        member_id=member.id,
        workspace_id=member.workspace_id,
        role=member.role,
        request_id=request.headers.get("X-Request-Id"),
    )


CurrentCaller = Annotated[Caller, Depends(current_caller)]
