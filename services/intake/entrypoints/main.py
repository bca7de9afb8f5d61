"""`python -m services.intake`: one intake process."""

from shared.http import run_service

from ..settings import IntakeSettings
from .http_api import create_app


def main() -> None:
    run_service("intake", IntakeSettings(), create_app)
