"""Who is calling: a valid bearer token for a member that ticket-core still knows.

The token names the member and the workspace; the role is ticket-core's. It is cached for a
few seconds per member, and the cached entry is dropped as soon as a `member.*` event for
that member arrives (see live.py), so a demoted or removed member loses rights within the
time that event takes to arrive; ticket-core checks its own membership on every ticket write
anyway, so the cache never widens what a member may change there.
"""

import time
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth import InvalidToken, SigningKeysUnavailable, TokenClaims, TokenVerifier
from shared.contracts.api import Capability, MemberOut, Role
from shared.http import REQUEST_ID_HEADER, client_request_id
from shared.problems import ProblemError

from .upstream import Upstream, UpstreamProblem

bearer = HTTPBearer(auto_error=False, description="JWT from `helpdesk token` (or your IdP)")

UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Caller:
    member_id: UUID
    workspace_id: UUID
    role: Role
    # What ticket-core lets this member do; passed on to the services that own no members.
    capabilities: frozenset[Capability]
    request_id: str | None


class MembershipCache:
    """Members as ticket-core last answered, for at most `ttl_seconds` each."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[tuple[UUID, UUID], tuple[float, MemberOut]] = {}
        self._forgotten_at: dict[tuple[UUID, UUID], float] = {}

    def get(self, workspace_id: UUID, member_id: UUID) -> MemberOut | None:
        entry = self._entries.get((workspace_id, member_id))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, member: MemberOut, *, asked_at: float) -> None:
        """`asked_at`: when ticket-core was asked. An answer older than the last change of
        that member is not kept: it may be the role from before the change."""
        key = (member.workspace_id, member.id)
        if self._ttl > 0 and self._forgotten_at.get(key, -1.0) < asked_at:
            self._entries[key] = (time.monotonic() + self._ttl, member)

    def forget(self, workspace_id: UUID, member_id: UUID) -> None:
        self._entries.pop((workspace_id, member_id), None)
        self._forgotten_at[(workspace_id, member_id)] = time.monotonic()


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
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        claims = await verifier.verify(credentials.credentials)
    except InvalidToken as error:
        raise ProblemError(401, "invalid_token", str(error), headers=UNAUTHENTICATED) from error
    except SigningKeysUnavailable as error:
        raise ProblemError(
            503, "signing_keys_unavailable", f"{error}; retry in a moment."
        ) from error
    member = await _membership(request, claims)
    return Caller(
        member_id=member.id,
        workspace_id=member.workspace_id,
        role=member.role,
        capabilities=frozenset(member.capabilities),
        # The caller's id or the one made for this request: every service logs the same one.
        request_id=getattr(request.state, "request_id", None)
        or client_request_id(request.headers.get(REQUEST_ID_HEADER)),
    )


async def _membership(request: Request, claims: TokenClaims) -> MemberOut:
    cache: MembershipCache = request.app.state.memberships
    cached = cache.get(claims.workspace_id, claims.member_id)
    if cached is not None:
        return cached
    ticket_core: Upstream = request.app.state.ticket_core
    asked_at = time.monotonic()
    try:
        member = MemberOut.model_validate(
            await ticket_core.call(
                "GET",
                f"/internal/v1/members/{claims.member_id}",
                # The role and capabilities are what this asks for: the credential names only
                # the member.
                workspace_id=claims.workspace_id,
                member_id=claims.member_id,
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
    cache.put(member, asked_at=asked_at)
    return member


CurrentCaller = Annotated[Caller, Depends(current_caller)]


async def stream_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    access_token: Annotated[
        str | None,
        Query(
            max_length=4000,
            description="The bearer token, for clients that cannot send headers (EventSource).",
        ),
    ] = None,
) -> Caller:
    if credentials is None and access_token:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=access_token)
    return await current_caller(request, credentials)


StreamCaller = Annotated[Caller, Depends(stream_caller)]
