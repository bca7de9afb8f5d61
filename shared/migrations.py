"""Runs a service's Alembic migrations, from the CLI or from code (tests, `helpdesk migrate`).

Each service keeps its own migrations in `services/<name>/store/migrations`; their `env.py`
is three lines calling `run_migrations(target_metadata)`.
"""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData

from shared.db import create_engine

T = TypeVar("T")


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade_to_head(migrations_dir: Path, database_url: str) -> None:
    """Bring the database at `database_url` to the newest revision."""
    await _in_one_transaction(
        database_url, _upgrade_with, alembic_config(migrations_dir, database_url)
    )


def _upgrade_with(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def run_migrations(target_metadata: MetaData) -> None:
    """Body of every service's `env.py`."""
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_on(connection, target_metadata)
        return
    # Called by the plain `alembic` command line: open our own connection.
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "set sqlalchemy.url (the service's DATABASE_URL)"
    asyncio.run(_in_one_transaction(url, _run_on, target_metadata))


async def _in_one_transaction(url: str, work: Callable[[Connection, T], None], argument: T) -> None:
    """`work(connection, argument)` on a connection of its own, in one transaction."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(work, argument)
    finally:
        await engine.dispose()


def _run_on(connection: Connection, target_metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
