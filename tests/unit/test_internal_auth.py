"""Internal credentials (`shared/internal_auth.py`): what a service accepts as proof of who is
calling, and everything it refuses."""

import base64
import json
import time
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from shared.auth import issue_token
from shared.contracts.api import Capability, Role
from shared.internal_auth import (
    Caller,
    InternalTokenSigner,
    InternalTokenVerifier,
    InvalidInternalCredential,
    parse_secrets,
)
from shared.problems import ProblemError, install_problem_handlers

SECRET = "internal-secret-" + "a" * 48  # 64 bytes: long enough for HS512 too
OLD_SECRET = "internal-secret-" + "o" * 32
DASHBOARD_SECRET = "dashboard-secret-" + "d" * 32


def signer(*secrets: str) -> InternalTokenSigner:
    return InternalTokenSigner(list(secrets or (SECRET,)), issuer="gateway")


def verifier(*secrets: str, audience: str = "ticket-core") -> InternalTokenVerifier:
    return InternalTokenVerifier(list(secrets or (SECRET,)), audience=audience)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "gateway",
        "aud": "ticket-core",
        "workspace_id": str(uuid4()),
        "sub": str(uuid4()),
        "role": "owner",
        "iat": now,
        "exp": now + 60,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def test_a_credential_names_the_caller_it_was_signed_for() -> None:
    workspace_id, member_id = uuid4(), uuid4()
    token = signer().sign("ticket-core", workspace_id, member_id, Role.ADMIN)

    caller = verifier().verify(token)

    assert (caller.issuer, caller.workspace_id, caller.member_id, caller.role) == (
        "gateway",
        workspace_id,
        member_id,
        Role.ADMIN,
    )
    assert caller.require_member() == (member_id, Role.ADMIN)
    assert caller.require_member_id() == member_id


def test_the_membership_lookup_credential_names_the_member_but_no_role() -> None:
    workspace_id, member_id = uuid4(), uuid4()
    caller = verifier().verify(signer().sign("ticket-core", workspace_id, member_id))

    assert caller.role is None
    assert caller.require_member_id() == member_id
    with pytest.raises(ProblemError) as refused:
        caller.require_member()
    assert refused.value.problem.status == 401
    assert refused.value.problem.code == "invalid_internal_credential"
    assert "role" in refused.value.problem.detail


def test_a_credential_naming_no_member_cannot_act_for_one() -> None:
    caller = verifier().verify(signer().sign("ticket-core", uuid4()))

    with pytest.raises(ProblemError, match="names the member"):
        caller.require_member_id()


def test_a_credential_for_another_service_is_refused() -> None:
    token = signer().sign("activity-log", uuid4(), uuid4(), Role.OWNER)

    with pytest.raises(InvalidInternalCredential, match="not for ticket-core"):
        verifier(audience="ticket-core").verify(token)
    assert verifier(audience="activity-log").verify(token).role is Role.OWNER


def test_an_expired_credential_is_refused_and_says_so() -> None:
    # Past the clock-skew leeway too.
    token = signer().sign("ticket-core", uuid4(), uuid4(), Role.OWNER, lifetime_seconds=-30)

    with pytest.raises(InvalidInternalCredential, match="expired"):
        verifier().verify(token)


@pytest.mark.parametrize("missing", ["aud", "iss", "exp", "iat", "workspace_id"])
def test_a_credential_without_a_required_claim_is_refused(missing: str) -> None:
    token = jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256")

    with pytest.raises(InvalidInternalCredential, match=missing):
        verifier().verify(token)


@pytest.mark.parametrize(
    "bad",
    [{"workspace_id": "not-a-uuid"}, {"sub": "nobody"}, {"role": "superuser"}],
    ids=["workspace", "member", "role"],
)
def test_a_credential_with_an_invalid_claim_is_refused(bad: dict[str, str]) -> None:
    token = jwt.encode(claims(**bad), SECRET, algorithm="HS256")

    with pytest.raises(InvalidInternalCredential, match="claims are not valid"):
        verifier().verify(token)


def test_a_dashboard_token_is_not_an_internal_credential() -> None:
    dashboard = issue_token(uuid4(), uuid4(), DASHBOARD_SECRET)
    with pytest.raises(InvalidInternalCredential, match="not signed with a known internal"):
        verifier().verify(dashboard)
    # Signed with the dashboard's secret, even with every internal claim: refused.
    forged = jwt.encode(claims(), DASHBOARD_SECRET, algorithm="HS256")
    with pytest.raises(InvalidInternalCredential, match="not signed with a known internal"):
        verifier().verify(forged)


def _unsigned(header: dict[str, str], body: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part(header)}.{part(body)}."


def test_an_unsigned_credential_alg_none_is_refused() -> None:
    for token in (
        jwt.encode(claims(), "", algorithm="none"),
        _unsigned({"alg": "none", "typ": "JWT"}, claims()),
        _unsigned({"alg": "HS256", "typ": "JWT"}, claims()),  # signature left off
    ):
        with pytest.raises(InvalidInternalCredential):
            verifier().verify(token)


def test_a_credential_signed_with_another_algorithm_is_refused() -> None:
    hs512 = jwt.encode(claims(), SECRET, algorithm="HS512")
    with pytest.raises(InvalidInternalCredential, match="not valid"):
        verifier().verify(hs512)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs256 = jwt.encode(claims(), key, algorithm="RS256")
    with pytest.raises(InvalidInternalCredential, match="not valid"):
        verifier().verify(rs256)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 5000])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidInternalCredential):
        verifier().verify(token)


def test_rotation_old_tokens_pass_while_the_old_secret_is_listed_and_fail_once_removed() -> None:
    workspace_id = uuid4()
    before = signer(OLD_SECRET).sign("ticket-core", workspace_id, uuid4(), Role.MEMBER)
    # Step 1: every service lists the new secret first and keeps the old one.
    during = signer(SECRET, OLD_SECRET).sign("ticket-core", workspace_id, uuid4(), Role.MEMBER)
    rotating = verifier(SECRET, OLD_SECRET)
    assert rotating.verify(before).workspace_id == workspace_id
    assert rotating.verify(during).workspace_id == workspace_id
    # The new one signs: a service that knows only the new secret accepts it already.
    assert verifier(SECRET).verify(during).workspace_id == workspace_id
    # Step 2: the old secret is removed; what it signed is refused.
    with pytest.raises(InvalidInternalCredential, match="not signed with a known internal"):
        verifier(SECRET).verify(before)


def test_secrets_are_a_comma_separated_list_and_one_is_needed() -> None:
    assert parse_secrets(" new , old,, ") == ["new", "old"]
    with pytest.raises(ValueError, match="at least one"):
        InternalTokenSigner(parse_secrets(" , "), issuer="gateway")
    with pytest.raises(ValueError, match="at least one"):
        InternalTokenVerifier([], audience="intake")


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.internal_verifier = verifier()

    @app.get("/internal/v1/whoami")
    async def whoami(caller: Caller) -> dict[str, str | None]:
        return {
            "workspace_id": str(caller.workspace_id),
            "member_id": str(caller.member_id),
            "role": caller.role.value if caller.role else None,
        }

    return app


async def _get(headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get("/internal/v1/whoami", headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Workspace-Id": str(uuid4()), "X-Member-Id": str(uuid4()), "X-Member-Role": "owner"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Basic {base64.b64encode(b'gateway:secret').decode()}"},
        {"Authorization": f"Bearer {issue_token(uuid4(), uuid4(), DASHBOARD_SECRET)}"},
    ],
    ids=["nothing", "bare-identity-headers", "garbage", "basic-auth", "dashboard-token"],
)
async def test_the_route_dependency_answers_401_problem_json(headers: dict[str, str]) -> None:
    answer = await _get(headers)

    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["www-authenticate"] == "Bearer"
    problem = answer.json()
    assert problem["code"] == "invalid_internal_credential"
    assert "Internal call refused" in problem["detail"]


async def test_the_route_dependency_hands_the_route_the_verified_caller() -> None:
    workspace_id, member_id = uuid4(), uuid4()
    token = signer().sign("ticket-core", workspace_id, member_id, Role.GUEST)
    # A bare header beside a valid credential changes nothing.
    answer = await _get({"Authorization": f"Bearer {token}", "X-Member-Role": "owner"})

    assert answer.status_code == 200
    assert answer.json() == {
        "workspace_id": str(workspace_id),
        "member_id": str(member_id),
        "role": "guest",
    }
    assert UUID(answer.json()["member_id"]) == member_id


def test_a_credential_carries_the_callers_capabilities() -> None:
    granted = [Capability.CONFIGURE_SETTINGS, Capability.READ_DELETED_HISTORY]
    token = signer().sign("ticket-core", uuid4(), uuid4(), Role.ADMIN, capabilities=granted)

    caller = verifier().verify(token)

    assert caller.role is Role.ADMIN
    assert caller.capabilities == frozenset(granted)


def test_a_capability_this_version_does_not_know_grants_nothing() -> None:
    token = jwt.encode(
        claims(capabilities=["configure_settings", "fly"]), SECRET, algorithm="HS256"
    )

    assert verifier().verify(token).capabilities == {Capability.CONFIGURE_SETTINGS}


def test_capabilities_that_are_not_a_list_are_refused() -> None:
    token = jwt.encode(claims(capabilities="configure_settings"), SECRET, algorithm="HS256")

    with pytest.raises(InvalidInternalCredential):
        verifier().verify(token)
