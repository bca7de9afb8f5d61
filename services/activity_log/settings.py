from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ActivityLogSettings(ServiceSettings):
    """Environment variables are prefixed `ACTIVITY_LOG_`."""

    model_config = SettingsConfigDict(env_prefix="ACTIVITY_LOG_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/activity_log.db"
    http_port: int = 8102
    consumer_group: str = "activity-log"
