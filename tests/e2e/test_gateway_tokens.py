"""Tokens at the gateway process: RS256 tokens of the configured identity provider (JWKS)
work beside `helpdesk token`'s HS256 ones, and every other token is refused with 401."""

from datetime import timedelta
from uuid import uuid4

import httpx
import pytest

from tests.e2e.conftest import System
from tests.support.jwks import IdentityProvider, new_rsa_key

pytestmark = pytest.mark.e2e


async def test_an_rs256_token_of_the_identity_provider_works_like_a_helpdesk_token(
    system: System, gateway: httpx.AsyncClient, identity_provider: IdentityProvider
) -> None:
    team = system.create_workspace()
    token = identity_provider.token(team.member_id, team.workspace_id)

    created = await gateway.post(
        "/api/v1/tickets",
        json={"subject": "Signed by the IdP"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert created.status_code == 201, created.text
    with_hs256 = await gateway.get(f"/api/v1/tickets/{created.json()['id']}", headers=team.auth)
    assert with_hs256.status_code == 200


@pytest.mark.parametrize(
    "forge",
    ["another-key", "unknown-key-id", "expired", "another-workspace", "unknown-member"],
)
async def test_an_rs256_token_that_does_not_hold_is_refused_and_changes_nothing(
    system: System,
    gateway: httpx.AsyncClient,
    identity_provider: IdentityProvider,
    forge: str,
) -> None:
    team = system.create_workspace()
    member, workspace = team.member_id, team.workspace_id
    token = {
        "another-key": lambda: identity_provider.token(member, workspace, key=new_rsa_key()),
        "unknown-key-id": lambda: identity_provider.token(member, workspace, key_id="nope"),
        "expired": lambda: identity_provider.token(member, workspace, ttl=timedelta(seconds=-10)),
        "another-workspace": lambda: identity_provider.token(member, uuid4()),
        "unknown-member": lambda: identity_provider.token(uuid4(), workspace),
    }[forge]()
    before = await system.ticket_core_counts()

    refused = await gateway.post(
        "/api/v1/tickets",
        json={"subject": "Forged"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert refused.status_code == 401, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["code"] in {"invalid_token", "unknown_member"}
    assert await system.ticket_core_counts() == before
