from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Environment variables are prefixed `INTAKE_`."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/intake.db"
    http_host: str = Field(
        default="127.0.0.1",
        description="The widget's address (public widget API and health only): loopback by "
        "default; set `0.0.0.0` (or a proxy's network) to let browsers reach it.",
    )
    http_port: int = 8103  # the widget's address: the public widget API only
    internal_host: str = Field(
        default="127.0.0.1",
        description="Address of intake's internal API (`/internal/v1`, for the gateway): "
        "loopback by default; an internal network's address only, never a public one.",
    )
    internal_port: int = 8113  # the gateway's: /internal/v1
    consumer_group: str = "intake"
    rate_window_seconds: int = 60
    rate_limit_per_assistant: int = 120
    rate_limit_per_conversation: int = 10
    request_timeout_seconds: int = 120
    timeout_check_interval_seconds: float = 5.0
