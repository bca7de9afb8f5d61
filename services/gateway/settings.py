from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import SystemSettings


class GatewaySettings(SystemSettings):
    """Environment variables are prefixed `GATEWAY_`."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    ticket_core_url: str = "http://127.0.0.1:8101"
    activity_log_url: str = "http://127.0.0.1:8102"
    intake_url: str = "http://127.0.0.1:8103"
    upstream_timeout_seconds: float = 10.0
    max_body_bytes: int = Field(default=1_048_576, description="Larger request bodies get 413.")
    cors_origins: list[str] = Field(default_factory=list)
