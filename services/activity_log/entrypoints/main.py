"""`python -m services.activity_log`: one activity-log process (consumer + HTTP API)."""

import uvicorn

from shared.logging import configure_logging

from ..settings import ActivityLogSettings
from .http_api import create_app


def main() -> None:
    settings = ActivityLogSettings()
    configure_logging("activity-log", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )
