"""The one way tests call a service's internal API: with a credential they sign themselves, as
the gateway does (`shared/internal_auth.py`). Never with bare identity headers: no service
reads them."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from services.ticket_core.domain.permissions import capabilities_of
from shared.contracts.api import Capability, Role
from shared.internal_auth import TOKEN_LIFETIME_SECONDS, InternalTokenSigner, parse_secrets
from shared.settings import SystemSettings


def internal_credential(
    audience: str,
    workspace_id: UUID | str,
    member_id: UUID | str | None = None,
    role: Role | str | None = None,
    *,
    capabilities: Collection[Capability] | None = None,
    secrets: str | None = None,
    lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
    issuer: str = "tests",
) -> str:
    """A token for `audience` (`ticket-core`, `activity-log`, `intake`) naming this caller,
    signed with the first of `secrets` (the `HELPDESK_INTERNAL_SECRETS` value the services
    run with; by default this process's own setting). With a role and no `capabilities`, the
    credential lists what ticket-core grants that role, as the gateway's would."""
    signer = InternalTokenSigner(
        parse_secrets(secrets) if secrets is not None else SystemSettings().internal_secret_list,
        issuer=issuer,
    )
    return signer.sign(
        audience,
        UUID(str(workspace_id)),
        UUID(str(member_id)) if member_id is not None else None,
        Role(role) if role is not None else None,
        capabilities=_granted(role) if capabilities is None else capabilities,
        lifetime_seconds=lifetime_seconds,
    )


def _granted(role: Role | str | None) -> list[Capability]:
    return capabilities_of(Role(role)) if role is not None else []


def internal_headers(
    audience: str,
    workspace_id: UUID | str,
    member_id: UUID | str | None = None,
    role: Role | str | None = None,
    *,
    capabilities: Collection[Capability] | None = None,
    secrets: str | None = None,
    lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
) -> dict[str, str]:
    """`Authorization: Bearer <internal credential>`, ready to send."""
    token = internal_credential(
        audience,
        workspace_id,
        member_id,
        role,
        capabilities=capabilities,
        secrets=secrets,
        lifetime_seconds=lifetime_seconds,
    )
    return {"Authorization": f"Bearer {token}"}
