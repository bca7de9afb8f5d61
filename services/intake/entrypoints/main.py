"""`python -m services.intake`: one intake process."""

from shared.http import run_service
from shared.settings import settings_to_start

from ..settings import IntakeSettings
from .http_api import create_app


def main() -> None:
    run_service("intake", settings_to_start("intake", IntakeSettings), create_app)
