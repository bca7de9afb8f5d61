from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Environment variables are prefixed `INTAKE_`."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/intake.db"
    http_port: int = 8103
