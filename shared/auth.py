"""Dashboard tokens: HS256 JWTs whose claims name the member (`sub`) and the workspace.

The token says who the caller is, never what they may do: the role is read from ticket-core's
membership on every request, so a demoted or removed member loses rights at once.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


def read_token(token: str, secret: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
        return TokenClaims(
            member_id=UUID(str(claims["sub"])), workspace_id=UUID(str(claims["workspace_id"]))
        )
    except jwt.ExpiredSignatureError as error:
        raise InvalidToken("the token has expired; get a new one") from error
    except (jwt.PyJWTError, KeyError, ValueError) as error:
        raise InvalidToken(f"the token is not valid: {error}") from error
