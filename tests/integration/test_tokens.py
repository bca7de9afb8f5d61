"""Token checks with a real JWKS endpoint over HTTP: RS256 tokens of an identity provider,
HS256 tokens of `helpdesk token`, and everything an attacker might try instead."""

import hashlib
import hmac
import socket
from collections.abc import Iterator
from datetime import timedelta
from uuid import uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from shared.auth import InvalidToken, SigningKeysUnavailable, TokenVerifier, issue_token
from tests.support.jwks import IdentityProvider, new_rsa_key

SECRET = "integration-secret-of-at-least-32-bytes"


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with IdentityProvider() as running:
        yield running


async def test_an_rs256_token_of_the_provider_names_its_member_and_workspace(
    provider: IdentityProvider,
) -> None:
    member, workspace = uuid4(), uuid4()
    verifier = TokenVerifier(SECRET, jwks_url=provider.jwks_url)

    claims = await verifier.verify(provider.token(member, workspace))

    assert (claims.member_id, claims.workspace_id) == (member, workspace)


async def test_the_key_set_is_fetched_once_for_many_tokens(provider: IdentityProvider) -> None:
    verifier = TokenVerifier(SECRET, jwks_url=provider.jwks_url)
    for _ in range(20):
        await verifier.verify(provider.token(uuid4(), uuid4()))

    assert provider.requests == 1


async def test_hs256_tokens_of_helpdesk_token_still_work_beside_jwks(
    provider: IdentityProvider,
) -> None:
    member, workspace = uuid4(), uuid4()
    verifier = TokenVerifier(SECRET, jwks_url=provider.jwks_url)

    claims = await verifier.verify(issue_token(member, workspace, SECRET))

    assert claims.member_id == member


def _forged_with_public_key_as_hmac_secret(provider: IdentityProvider) -> str:
    """The classic algorithm-confusion attack: HS256 keyed with the provider's public key."""
    pem = provider.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    body = jwt.utils.base64url_encode(
        f'{{"sub":"{uuid4()}","workspace_id":"{uuid4()}","exp":9999999999}}'.encode()
    )
    signature = hmac.new(pem, header + b"." + body, hashlib.sha256).digest()
    return (header + b"." + body + b"." + jwt.utils.base64url_encode(signature)).decode()


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda p: p.token(uuid4(), uuid4(), key=new_rsa_key()), "not valid"),
        (lambda p: p.token(uuid4(), uuid4(), key_id="someone-elses-key"), "not known"),
        (lambda p: p.token(uuid4(), uuid4(), ttl=timedelta(seconds=-5)), "expired"),
        (lambda p: p.token(uuid4(), "not-a-uuid"), "not valid"),
        (lambda p: _forged_with_public_key_as_hmac_secret(p), "not valid"),
        (
            lambda p: jwt.encode({"sub": str(uuid4()), "exp": 9999999999}, "", algorithm="none"),
            "'none' are not accepted",
        ),
        (lambda p: "not.a.jwt", "not valid"),
    ],
    ids=[
        "signed-by-another-key",
        "unknown-key-id",
        "expired",
        "bad-workspace-claim",
        "algorithm-confusion",
        "alg-none",
        "garbage",
    ],
)
async def test_a_token_not_signed_by_the_provider_is_refused(
    provider: IdentityProvider, make_token: object, message: str
) -> None:
    verifier = TokenVerifier(SECRET, jwks_url=provider.jwks_url)

    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(make_token(provider))  # type: ignore[operator]

    assert message in str(refused.value)


async def test_audience_and_issuer_are_required_when_configured(
    provider: IdentityProvider,
) -> None:
    verifier = TokenVerifier(
        SECRET, jwks_url=provider.jwks_url, audience="helpdesk", issuer="https://idp.acme.io"
    )
    good = provider.token(uuid4(), uuid4(), aud="helpdesk", iss="https://idp.acme.io")
    await verifier.verify(good)

    for wrong in (
        provider.token(uuid4(), uuid4(), aud="billing", iss="https://idp.acme.io"),
        provider.token(uuid4(), uuid4(), aud="helpdesk", iss="https://evil.example"),
        provider.token(uuid4(), uuid4()),
    ):
        with pytest.raises(InvalidToken):
            await verifier.verify(wrong)


async def test_hs256_can_be_switched_off_and_the_refusal_says_what_is_accepted(
    provider: IdentityProvider,
) -> None:
    verifier = TokenVerifier(SECRET, accept_hs256=False, jwks_url=provider.jwks_url)

    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(issue_token(uuid4(), uuid4(), SECRET))

    assert "accepted: RS256" in str(refused.value)


async def test_rs256_is_refused_when_no_key_set_is_configured(
    provider: IdentityProvider,
) -> None:
    with pytest.raises(InvalidToken) as refused:
        await TokenVerifier(SECRET).verify(provider.token(uuid4(), uuid4()))

    assert "accepted: HS256" in str(refused.value)


async def test_an_unreachable_key_set_is_not_blamed_on_the_token() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with IdentityProvider() as provider:
        token = provider.token(uuid4(), uuid4())
    verifier = TokenVerifier(SECRET, jwks_url=f"http://127.0.0.1:{closed_port}/jwks.json")

    with pytest.raises(SigningKeysUnavailable):
        await verifier.verify(token)
