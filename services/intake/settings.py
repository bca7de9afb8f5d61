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
    # The widget listener's body limit (the whole request, before anything is parsed).
    widget_max_body_bytes: int = 262_144
    # Token buckets, in this process's memory: so many calls per window, refilled evenly.
    rate_window_seconds: int = 60
    rate_limit_per_assistant: int = 120  # ticket requests and messages, all visitors
    rate_limit_per_address: int = 30  # ticket requests and messages, one client address
    rate_limit_reads_per_address: int = 600  # status polls and CORS preflights
    rate_limit_per_conversation: int = 10  # accepted ticket requests, in the database
    rate_limit_max_tracked_addresses: int = 100_000
    # Comma-separated proxy addresses/networks whose X-Forwarded-For is believed; empty:
    # the connection's own address is the client's.
    trusted_proxies: str = ""
    # Refusals are counted in memory and written every so often (one transaction).
    refusal_flush_interval_seconds: float = 1.0
    refusal_sample_size: int = 100  # newest refusals kept per assistant
    refusal_samples_per_minute: int = 20  # of which at most so many per minute
    refusal_retention_days: int = 30  # per-minute refusal counts kept so long
    request_timeout_seconds: int = 120
    timeout_check_interval_seconds: float = 5.0
