"""`python -m services.activity_log`: one activity-log process (consumer + HTTP API)."""

from shared.http import run_service
from shared.settings import settings_to_start

from ..settings import ActivityLogSettings
from .http_api import create_app


def main() -> None:
    run_service("activity-log", settings_to_start("activity-log", ActivityLogSettings), create_app)
