"""`python -m services.gateway`: the dashboard API process."""

import uvicorn

from shared.logging import configure_logging

from ..settings import GatewaySettings
from .http_api import create_app


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )
