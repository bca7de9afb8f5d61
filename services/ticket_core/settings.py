from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class TicketCoreSettings(ServiceSettings):
    """Environment variables are prefixed `TICKET_CORE_` (e.g. `TICKET_CORE_DATABASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="TICKET_CORE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/ticket_core.db"
    http_port: int = 8101
    auto_close_interval_seconds: float = 60.0
    consumer_group: str = "ticket-core"
