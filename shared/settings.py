"""Settings common to every service, read from the environment (pydantic-settings).

Each service subclasses `ServiceSettings` with its own env prefix (e.g. `TICKET_CORE_`),
so one shell can configure all four without clashes; the broker address and the JWT secret
are the same for the whole system and have no prefix.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.internal_auth import DEVELOPMENT_INTERNAL_SECRET, parse_secrets


class SystemSettings(BaseSettings):
    """What the whole system shares."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="localhost:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    jwt_secret: str = Field(
        default="change-me-in-production-please-32b",
        validation_alias="HELPDESK_JWT_SECRET",
        min_length=32,
        description="HS256 secret for dashboard tokens (at least 32 bytes).",
    )
    internal_secrets: str = Field(
        default=DEVELOPMENT_INTERNAL_SECRET,
        validation_alias="HELPDESK_INTERNAL_SECRETS",
        description="Secrets of internal calls' credentials, comma-separated; the first signs, "
        "all verify (see shared/internal_auth.py for rotation).",
    )
    log_level: str = Field(default="INFO", validation_alias="HELPDESK_LOG_LEVEL")
    log_format: str = Field(
        default="json", validation_alias="HELPDESK_LOG_FORMAT", pattern="^(json|console)$"
    )

    @property
    def internal_secret_list(self) -> list[str]:
        return parse_secrets(self.internal_secrets)


class ServiceSettings(SystemSettings):
    """A service's own settings: its database, its HTTP port, its consumer group."""

    database_url: str = "sqlite+aiosqlite:///./var/service.db"
    http_host: str = Field(
        default="127.0.0.1",
        description="Address the service's internal API listens on: loopback by default; set "
        "an internal network's address only, never a public one (`<PREFIX>_HTTP_HOST`).",
    )
    http_port: int = 8000
    max_body_bytes: int = Field(
        default=1_048_576,
        gt=0,
        description="Larger request bodies get 413 `body_too_large` before anything reads "
        "them (`<PREFIX>_MAX_BODY_BYTES`).",
    )
    outbox_poll_interval_seconds: float = 0.2
