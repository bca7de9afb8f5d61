"""Fixtures shared by integration, e2e and benchmark tests.

What is real: the Kafka broker (real Apache Kafka, see tests/support/infrastructure.py) and
the databases (a SQLite file per test, or a fresh database on a throwaway PostgreSQL cluster).
Nothing is faked in integration and e2e tests; unit tests need none of these fixtures.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from shared.kafka_admin import ensure_topics
from shared.kafka_security import aiokafka_security
from shared.settings import SystemSettings
from tests.support.infrastructure import kafka_bootstrap_servers, postgres_url

DATABASE_KINDS = ["sqlite", "postgres"]
# A test's figures (`record_property(FIGURES, text)`), shown in the summary at the end of the
# run: a test's own output is captured, and under pytest-xdist it never reaches the terminal.
FIGURES = "figures"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, worker N uses the Nth broker `deploy/test.sh` started
    (HELPDESK_TEST_KAFKA_BROKERS), so the consumers of one worker's tests and services never
    read the messages of the other's. Set here, before any fixture, so that the services a
    test starts as processes inherit it too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    brokers = os.environ.get("HELPDESK_TEST_KAFKA_BROKERS", "").split()
    if worker.startswith("gw") and brokers:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = brokers[int(worker[2:]) % len(brokers)]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    shown = [
        (report.nodeid, value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == FIGURES
    ]
    if shown:
        terminalreporter.section(FIGURES)
        for nodeid, text in sorted(shown):
            terminalreporter.write_line(f"{nodeid}\n{text}")


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """Bootstrap address of a real Kafka broker with the project's topics created."""
    with kafka_bootstrap_servers() as bootstrap:
        asyncio.run(ensure_topics(bootstrap, security=aiokafka_security(SystemSettings())))
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL (postgresql://...) of the throwaway PostgreSQL server's `postgres` database."""
    with postgres_url() as url:
        yield url


NewDatabase = Callable[[str], Awaitable[str]]


@pytest.fixture
async def new_database(
    request: pytest.FixtureRequest, tmp_path: Path, db_kind: str
) -> AsyncIterator[NewDatabase]:
    """Makes empty databases of the kind the test is parametrised with (`db_kind`)."""
    kind = db_kind
    created: list[str] = []
    admin_url = request.getfixturevalue("postgres_server") if kind == "postgres" else None

    async def make(name: str) -> str:
        if kind == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / name}.db"
        assert admin_url is not None
        database = f"t_{name.replace('-', '_')}_{uuid4().hex[:12]}"
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{database}"')
        finally:
            await connection.close()
        created.append(database)
        url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=database)
        return url.render_as_string(hide_password=False)

    yield make

    if created and admin_url is not None:
        connection = await asyncpg.connect(admin_url)
        try:
            for database in created:
                await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await connection.close()


@pytest.fixture(params=DATABASE_KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "postgres":
        request.applymarker(pytest.mark.postgres)
    return kind
