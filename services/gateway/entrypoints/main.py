"""`python -m services.gateway`: the dashboard API process."""

from shared.http import run_service

from ..settings import GatewaySettings
from .http_api import create_app


def main() -> None:
    run_service("gateway", GatewaySettings(), create_app)
