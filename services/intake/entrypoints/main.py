"""`python -m services.intake`: one intake process."""

import uvicorn

from shared.logging import configure_logging

from ..settings import IntakeSettings
from .http_api import create_app


def main() -> None:
    settings = IntakeSettings()
    configure_logging("intake", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )
