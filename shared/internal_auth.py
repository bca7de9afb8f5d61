"""Who is calling an internal API: a short-lived token the gateway signs for one service.

An internal service never acts on a bare header. Each call carries `Authorization: Bearer
<token>`: a JWT (HS256) signed with one of the internal secrets (`HELPDESK_INTERNAL_SECRETS`,
never the dashboard's `HELPDESK_JWT_SECRET`), whose claims say

* `aud`: the one service the call is for (a token for activity-log is refused by intake);
* `iss`: the calling service (`gateway`);
* `workspace_id`, and `sub` (member id), `role` and `capabilities` once the gateway knows them
  (its membership lookup at ticket-core is made before it knows them): services that own no
  members decide with the capabilities, which ticket-core derives from its permission matrix;
  the role is there to be logged and shown;
* `exp`: a few seconds after `iat`, so a token seen in a log is soon worthless.

Rotation: the first secret signs (only the gateway signs), every listed secret verifies. To
rotate without refusing a call: (1) set `new,old` on ticket-core, activity-log and intake and
restart them (they accept both); (2) then set `new,old` on the gateway and restart it (it signs
with `new`); (3) once every gateway runs with it and a token lifetime (60 s) has passed, set
`new` alone everywhere. A credential signed with `old` is refused from then on.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.contracts.api import Capability, Role
from shared.problems import ProblemError

ALGORITHM = "HS256"
TOKEN_LIFETIME_SECONDS = 60
# Leeway for clocks of two hosts that disagree a little.
CLOCK_SKEW_SECONDS = 5
MIN_SECRET_BYTES = 32
DEVELOPMENT_INTERNAL_SECRET = "development-only-internal-secret-0123456789"


class InvalidInternalCredential(Exception):
    """The call's credential is missing, malformed, expired, for another service or not ours."""


@dataclass(frozen=True, slots=True)
class InternalCaller:
    """Who an internal call is made for, as the calling service vouched for it."""

    issuer: str
    workspace_id: UUID
    member_id: UUID | None
    role: Role | None
    capabilities: frozenset[Capability] = field(default_factory=frozenset)

    def require_member_id(self) -> UUID:
        """The member the call is made for, for a service that looks up the member's role in
        its own store (ticket-core); a credential that names none is refused."""
        if self.member_id is None:
            raise _refused("this call needs a credential that names the member")
        return self.member_id

    def require_member(self) -> tuple[UUID, Role]:
        """The member and role; a call that must come from a known member but names none is
        refused like a missing credential."""
        if self.member_id is None or self.role is None:
            raise _refused("this call needs a credential that names the member and their role")
        return self.member_id, self.role


def parse_secrets(value: str) -> list[str]:
    """`HELPDESK_INTERNAL_SECRETS`: comma-separated, the signing one first."""
    return [secret.strip() for secret in value.split(",") if secret.strip()]


def _checked(secrets: list[str], use: str) -> list[str]:
    # Whether the secrets are strong enough is decided once, when the service starts
    # (`shared.settings.settings_to_start`, which knows whether this is development).
    if not secrets:
        raise ValueError(f"at least one internal secret is needed to {use} internal calls")
    return list(secrets)


class InternalTokenSigner:
    """Signs credentials for calls from `issuer` to other services."""

    def __init__(self, secrets: list[str], *, issuer: str) -> None:
        self._secret = _checked(secrets, "sign")[0]
        self._issuer = issuer

    def sign(
        self,
        audience: str,
        workspace_id: UUID,
        member_id: UUID | None = None,
        role: Role | None = None,
        *,
        capabilities: Collection[Capability] = (),
        lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
    ) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "aud": audience,
            "workspace_id": str(workspace_id),
            "iat": now,
            "exp": now + lifetime_seconds,
        }
        if member_id is not None:
            claims["sub"] = str(member_id)
        if role is not None:
            claims["role"] = role.value
            claims["capabilities"] = sorted(capability.value for capability in capabilities)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)


class InternalTokenVerifier:
    """Checks credentials of calls made to `audience` (this service's name)."""

    def __init__(self, secrets: list[str], *, audience: str) -> None:
        self._secrets = _checked(secrets, "verify")
        self._audience = audience

    def verify(self, token: str) -> InternalCaller:
        last_error: Exception | None = None
        for secret in self._secrets:
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=[ALGORITHM],
                    audience=self._audience,
                    leeway=CLOCK_SKEW_SECONDS,
                    options={"require": ["aud", "iss", "exp", "iat", "workspace_id"]},
                )
            except jwt.InvalidSignatureError as error:
                last_error = error  # maybe signed with another listed secret
                continue
            except jwt.ExpiredSignatureError as error:
                raise InvalidInternalCredential("the internal credential has expired") from error
            except jwt.InvalidAudienceError as error:
                raise InvalidInternalCredential(
                    f"the internal credential is not for {self._audience}"
                ) from error
            except jwt.PyJWTError as error:
                raise InvalidInternalCredential(
                    f"the internal credential is not valid: {error}"
                ) from error
            return _caller(claims)
        raise InvalidInternalCredential(
            "the internal credential is not signed with a known internal secret"
        ) from last_error


def _caller(claims: dict[str, object]) -> InternalCaller:
    try:
        role = claims.get("role")
        member = claims.get("sub")
        return InternalCaller(
            issuer=str(claims["iss"]),
            workspace_id=UUID(str(claims["workspace_id"])),
            member_id=UUID(str(member)) if member is not None else None,
            role=Role(str(role)) if role is not None else None,
            capabilities=_capabilities(claims.get("capabilities", [])),
        )
    except (KeyError, ValueError) as error:
        raise InvalidInternalCredential(
            f"the internal credential's claims are not valid: {error}"
        ) from error


def _capabilities(claim: object) -> frozenset[Capability]:
    if not isinstance(claim, list):
        raise ValueError("capabilities is not a list")
    # A name this version does not know (a newer ticket-core's) grants nothing here.
    known = {capability.value for capability in Capability}
    return frozenset(Capability(name) for name in claim if name in known)


def _refused(why: str) -> ProblemError:
    return ProblemError(
        401,
        "invalid_internal_credential",
        f"Internal call refused: {why}. Internal APIs are called by the gateway only, with a "
        "credential signed with the internal secret.",
        headers={"WWW-Authenticate": "Bearer"},
    )


_bearer = HTTPBearer(auto_error=False, description="Internal credential signed by the gateway")


async def internal_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> InternalCaller:
    """FastAPI dependency of every internal route: the verified caller, or 401. The service
    puts its `InternalTokenVerifier` on `app.state.internal_verifier`."""
    if credentials is None:
        raise _refused("no internal credential (Authorization: Bearer) was sent")
    verifier: InternalTokenVerifier = request.app.state.internal_verifier
    try:
        return verifier.verify(credentials.credentials)
    except InvalidInternalCredential as error:
        raise _refused(str(error)) from error


Caller = Annotated[InternalCaller, Depends(internal_caller)]
