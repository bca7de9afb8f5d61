"""`python -m services.gateway`: the dashboard API process."""

from shared.http import run_service
from shared.settings import settings_to_start

from ..settings import GatewaySettings
from .http_api import create_app


def main() -> None:
    run_service("gateway", settings_to_start("gateway", GatewaySettings), create_app)
