"""A real service process (`python -m services.<name>`) refuses to start with the built-in or
a short secret unless HELPDESK_ENV=development, says what is wrong and how to fix it, and
starts in development mode, or in production with strong secrets."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from services.ticket_core.bootstrap import MIGRATIONS_DIR
from shared.internal_auth import DEVELOPMENT_INTERNAL_SECRET
from shared.migrations import upgrade_to_head
from shared.settings import DEVELOPMENT_JWT_SECRET, EXIT_CONFIGURATION_ERROR
from tests.support.credentials import strong_secrets
from tests.support.infrastructure import REPO_ROOT

SERVICES = ["ticket_core", "activity_log", "intake", "gateway"]


def clean_environment(**overrides: str) -> dict[str, str]:
    """The test runner's environment without any HELPDESK_* setting of the developer's shell
    (a HELPDESK_ENV=development there would hide what is tested), plus `overrides`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HELPDESK_")}
    return {**env, **overrides}


def start(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"services.{module}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )


@pytest.mark.parametrize("module", SERVICES)
def test_every_service_refuses_the_built_in_secrets_in_production(module: str) -> None:
    refused = start(module, clean_environment())

    assert refused.returncode == EXIT_CONFIGURATION_ERROR, refused.stderr
    message = refused.stderr
    assert "refusing to start" in message
    assert "HELPDESK_JWT_SECRET is the built-in development value" in message
    assert "HELPDESK_INTERNAL_SECRETS is the built-in development value" in message
    # How to fix it: how to make a secret, and the development way out.
    assert "secrets.token_urlsafe(48)" in message
    assert "HELPDESK_ENV=development" in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("secrets", "complaint"),
    [
        (
            {"HELPDESK_JWT_SECRET": "s" * 31, "HELPDESK_INTERNAL_SECRETS": "i" * 40},
            "HELPDESK_JWT_SECRET is 31 bytes; it must be at least 32",
        ),
        (
            {"HELPDESK_JWT_SECRET": "s" * 40, "HELPDESK_INTERNAL_SECRETS": "i" * 40 + ",short"},
            "secret 2 of HELPDESK_INTERNAL_SECRETS is 5 bytes; it must be at least 32",
        ),
        (
            {
                "HELPDESK_JWT_SECRET": "s" * 40,
                "HELPDESK_INTERNAL_SECRETS": f"{'i' * 40},{DEVELOPMENT_INTERNAL_SECRET}",
            },
            "secret 2 of HELPDESK_INTERNAL_SECRETS is the built-in development value",
        ),
        (
            {"HELPDESK_JWT_SECRET": "s" * 40, "HELPDESK_INTERNAL_SECRETS": "s" * 40},
            "secret 1 of HELPDESK_INTERNAL_SECRETS equals HELPDESK_JWT_SECRET",
        ),
    ],
)
def test_a_short_or_shared_secret_is_refused_and_never_echoed(
    secrets: dict[str, str], complaint: str
) -> None:
    refused = start("ticket_core", clean_environment(**secrets))

    assert refused.returncode == EXIT_CONFIGURATION_ERROR, refused.stderr
    assert complaint in refused.stderr
    for secret in ",".join(secrets.values()).split(","):
        assert secret not in refused.stderr


def test_an_unknown_environment_is_refused_with_what_is_allowed() -> None:
    refused = start("gateway", clean_environment(HELPDESK_ENV="prod", **strong_secrets()))

    assert refused.returncode == EXIT_CONFIGURATION_ERROR, refused.stderr
    assert "HELPDESK_ENV: Input should be 'development' or 'production'" in refused.stderr


@pytest.fixture
def ticket_core_database(tmp_path: Path) -> str:
    import asyncio

    url = f"sqlite+aiosqlite:///{tmp_path / 'ticket_core.db'}"
    asyncio.run(upgrade_to_head(MIGRATIONS_DIR, url))
    return url


@pytest.fixture
def port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "services.ticket_core"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)


def wait_ready(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("ticket-core did not become ready within 60 s")


@pytest.mark.parametrize("mode", ["development with the built-in secrets", "strong secrets"])
def test_the_service_starts_in_development_mode_or_with_strong_secrets(
    kafka: str, ticket_core_database: str, port: int, mode: str
) -> None:
    settings = (
        {"HELPDESK_ENV": "development"} if mode.startswith("development") else strong_secrets()
    )
    env = clean_environment(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        TICKET_CORE_DATABASE_URL=ticket_core_database,
        TICKET_CORE_HTTP_PORT=str(port),
        **settings,
    )
    with running(env) as process:
        wait_ready(process, port)
        process.terminate()
        process.wait(timeout=20)
        warning = process.stderr.read() if process.stderr else ""
    if mode.startswith("development"):
        assert "HELPDESK_ENV=development: starting with development secrets" in warning
        assert DEVELOPMENT_JWT_SECRET not in warning
    else:
        assert "development" not in warning


@pytest.mark.parametrize(
    ("kafka_settings", "complaint"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "intake"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
            "KAFKA_SSL_CAFILE=/nonexistent/ca.pem is not a readable file",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "TLS"},
            "KAFKA_SECURITY_PROTOCOL: Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or "
            "'SASL_SSL'",
        ),
    ],
)
def test_an_incomplete_kafka_security_setting_is_refused_with_what_to_set(
    kafka_settings: dict[str, str], complaint: str
) -> None:
    secrets = strong_secrets()
    refused = start("intake", clean_environment(**secrets, **kafka_settings))

    assert refused.returncode == EXIT_CONFIGURATION_ERROR, refused.stderr
    assert complaint in refused.stderr
    assert "Traceback" not in refused.stderr
    for secret in secrets.values():
        assert secret not in refused.stderr
