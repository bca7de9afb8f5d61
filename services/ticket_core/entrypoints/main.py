"""`python -m services.ticket_core`: one ticket-core process (HTTP API, outbox relay, consumers)."""

from shared.http import run_service
from shared.settings import settings_to_start

from ..settings import TicketCoreSettings
from .http_api import create_app


def main() -> None:
    run_service("ticket-core", settings_to_start("ticket-core", TicketCoreSettings), create_app)
