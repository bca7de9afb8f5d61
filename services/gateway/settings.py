from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import SystemSettings


class GatewaySettings(SystemSettings):
    """Environment variables are prefixed `GATEWAY_`."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Each: one address, or its replicas' addresses separated by commas, tried in that order
    # (`replica_addresses`).
    ticket_core_url: str = "http://127.0.0.1:8101"
    activity_log_url: str = "http://127.0.0.1:8102"
    intake_url: str = Field(
        default="http://127.0.0.1:8113",
        description="intake's internal API (INTAKE_INTERNAL_PORT), never the widget's address.",
    )
    dashboard_dir: Path = Field(
        default=Path(__file__).resolve().parents[2] / "dashboard" / "dist",
        description="The built dashboard and widget (`npm run build` in dashboard/), served at /.",
    )
    widget_api_url: str = Field(
        default="http://127.0.0.1:8103",
        description="intake's public widget address, as a visitor's browser reaches it: the "
        "widget demo page and the embed snippet point the widget there.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The dashboard's address as a browser reaches it (sign-in links).",
    )
    upstream_timeout_seconds: float = 10.0
    max_body_bytes: int = Field(default=1_048_576, description="Larger request bodies get 413.")
    cors_origins: list[str] = Field(
        default_factory=list, description='The dashboard\'s origins, e.g. ["https://desk.acme.io"].'
    )
    accept_hs256: bool = Field(
        default=True, description="Accept HS256 tokens signed with HELPDESK_JWT_SECRET."
    )
    jwks_url: str | None = Field(
        default=None, description="Accept RS256 tokens signed by the keys published here."
    )
    jwt_audience: str | None = Field(default=None, description="Required `aud` of RS256 tokens.")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of RS256 tokens.")
    membership_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a member's role is reused; a member.* event drops it at once.",
    )
    stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="A comment line this often keeps idle streams open."
    )
    stream_queue_size: int = Field(
        default=1000, ge=1, description="Events a slow stream may fall behind before it ends."
    )


def replica_addresses(value: str) -> list[str]:
    """`http://a:8101,http://b:8101` → the replicas' addresses, in the order given."""
    return [address.strip() for address in value.split(",") if address.strip()]
