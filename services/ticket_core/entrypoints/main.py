"""`python -m services.ticket_core`: one ticket-core process (HTTP API, outbox relay, consumers)."""

import uvicorn

from shared.logging import configure_logging

from ..settings import TicketCoreSettings
from .http_api import create_app


def main() -> None:
    settings = TicketCoreSettings()
    configure_logging("ticket-core", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )
