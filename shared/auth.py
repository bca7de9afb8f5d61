"""Dashboard tokens: JWTs whose claims name the member (`sub`) and the workspace.

`helpdesk token` issues HS256 tokens signed with the system's secret. A deployment with its
own identity provider configures a JWKS URL instead (or as well): RS256 tokens are then checked
against the provider's published keys. The token says who the caller is, never what they may
do: the role is ticket-core's.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt

ALGORITHM = "HS256"
DEFAULT_TOKEN_TTL = timedelta(hours=12)


class InvalidToken(Exception):
    """The token is missing, malformed, expired or not signed with our secret."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    member_id: UUID
    workspace_id: UUID


def issue_token(
    member_id: UUID, workspace_id: UUID, secret: str, ttl: timedelta = DEFAULT_TOKEN_TTL
) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(member_id),
        "workspace_id": str(workspace_id),
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class SigningKeysUnavailable(Exception):
    """The identity provider's key set (JWKS) could not be fetched: not the caller's fault."""


def read_token(token: str, secret: str) -> TokenClaims:
    return _claims(token, secret, ALGORITHM)


def _claims(
    token: str,
    key: Any,
    algorithm: str,
    *,
    audience: str | None = None,
    issuer: str | None = None,
) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],  # exactly one: the key decides it, never the token
            audience=audience,
            issuer=issuer,
            options={"require": ["sub", "exp"]},
        )
        return TokenClaims(
            member_id=UUID(str(claims["sub"])), workspace_id=UUID(str(claims["workspace_id"]))
        )
    except jwt.ExpiredSignatureError as error:
        raise InvalidToken("the token has expired; get a new one") from error
    except (jwt.PyJWTError, KeyError, ValueError) as error:
        raise InvalidToken(f"the token is not valid: {error}") from error


class TokenVerifier:
    """Checks a token by its algorithm: HS256 against the shared secret (when accepted), RS256
    against the JWKS at `jwks_url` (when configured); anything else is refused."""

    def __init__(
        self,
        secret: str,
        *,
        accept_hs256: bool = True,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self._secret = secret
        self._accept_hs256 = accept_hs256
        self._audience = audience
        self._issuer = issuer
        # PyJWKClient caches the key set and refetches it for a key id it has not seen.
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None

    @property
    def accepted(self) -> list[str]:
        return [alg for alg, on in (("HS256", self._accept_hs256), ("RS256", self._jwks)) if on]

    async def verify(self, token: str) -> TokenClaims:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as error:
            raise InvalidToken(f"the token is not valid: {error}") from error
        if algorithm == ALGORITHM and self._accept_hs256:
            return _claims(token, self._secret, ALGORITHM)
        if algorithm == "RS256" and self._jwks is not None:
            key = await self._signing_key(self._jwks, token)
            return _claims(token, key, "RS256", audience=self._audience, issuer=self._issuer)
        raise InvalidToken(
            f"tokens signed with {algorithm!r} are not accepted here; "
            f"accepted: {', '.join(self.accepted) or 'none'}"
        )

    @staticmethod
    async def _signing_key(jwks: jwt.PyJWKClient, token: str) -> Any:
        try:
            # The client fetches over blocking HTTP on a cache miss: keep it off the loop.
            return (await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)).key
        except jwt.PyJWKClientConnectionError as error:
            raise SigningKeysUnavailable(f"the signing keys could not be fetched: {error}") from (
                error
            )
        except jwt.PyJWKClientError as error:
            raise InvalidToken(f"the token's signing key is not known: {error}") from error
