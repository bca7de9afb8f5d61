"""Database engines, set up the same way for every service: SQLite by default, PostgreSQL too."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

from pydantic_core import to_json
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Integer,
    Table,
    TypeDecorator,
    event,
    insert,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(database_url: str, *, read_only: bool = False) -> AsyncEngine:
    """An async engine for `database_url`; for SQLite the file's folder is created.

    `read_only`: for queries only. On SQLite its transactions neither take nor wait for the
    write lock (WAL readers see the last commit while a writer writes), and a write through
    it fails; on PostgreSQL it is an ordinary engine.

    Its errors never quote the statement's parameters (`hide_parameters`): they are visitors'
    text and emails, and errors end up in logs.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        if read_only:
            _sqlite_readers.add(engine.sync_engine)
            event.listen(engine.sync_engine, "connect", _sqlite_query_only)
            event.listen(engine.sync_engine, "begin", _sqlite_on_begin_reading)
        else:
            event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while one writer writes; the busy timeout makes concurrent
    # writers (several replicas, the outbox relay) wait instead of failing at once.
    # pysqlite's own transaction handling is turned off so that `begin` below decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock at the start, so two transactions never both
    # read, then both try to write and deadlock into "database is locked".
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# The read-only SQLite engines: their transactions never take the write lock, so never a turn.
_sqlite_readers: WeakSet[Engine] = WeakSet()
# Per SQLite engine: the event loop its turn lock belongs to, and the lock.
_writer_turns: WeakKeyDictionary[Engine, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def writer_turn(engine: AsyncEngine) -> AsyncIterator[None]:
    """On SQLite, one write transaction of this process at a time, queued in the event loop.

    SQLite lets one writer in at a time anyway (`BEGIN IMMEDIATE`); without this queue the
    others wait in SQLite's busy handler, which polls with sleeps of up to 100 ms, so a
    freed lock stays unused for most of that time and concurrent writers crawl. Writers of
    other processes still meet the busy handler. Nothing on PostgreSQL, nothing for a
    read-only engine (its readers go on while a writer writes)."""
    if engine.dialect.name != "sqlite" or engine.sync_engine in _sqlite_readers:
        yield
        return
    loop = asyncio.get_running_loop()
    known = _writer_turns.get(engine.sync_engine)
    if known is None or known[0] is not loop:
        known = _writer_turns[engine.sync_engine] = (loop, asyncio.Lock())
    async with known[1]:
        yield


def create_read_engine(database_url: str, engine: AsyncEngine) -> AsyncEngine:
    """The engine for a service's queries: a read-only one on SQLite, `engine` itself on
    PostgreSQL (whose readers never wait for writers anyway)."""
    if engine.dialect.name == "sqlite":
        return create_engine(database_url, read_only=True)
    return engine


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    # Queries read through the OS page cache, shared by every connection, instead of each
    # connection's own small cache. Writers do not map the file: the pages a writer touched
    # stayed mapped and counted in its process's memory (activity-log's peak in a
    # 50,000-event burst: 201 MB when its writer mapped the file, 169 MB since, same rate).
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()


def _sqlite_on_begin_reading(connection: Any) -> None:
    # A deferred BEGIN: the transaction reads one consistent snapshot and never waits for
    # the writers' lock.
    connection.exec_driver_sql("BEGIN")


# Per (table, dialect): the INSERT in the driver's own parameter style, and each column's name
# and SQLAlchemy bind processor (None where the driver takes the value as it is).
_driver_inserts: dict[
    tuple[Table, str], tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]
] = {}


async def insert_rows(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert `rows` (each a value for every column of `table`) with one executemany of the
    database driver, in the session's transaction.

    The same rows as `session.execute(insert(table), rows)` stores, values converted by the
    columns' own types (SQLAlchemy's bind processors; JSON by pydantic's serializer, the same
    JSON value in other spacing), without the statement's per-row and per-parameter machinery
    around them, which for a batch of a thousand small rows cost more than the database's
    insert itself. For bulk writes of plain rows; no defaults are filled in and nothing is
    returned."""
    if not rows:
        return
    connection = await session.connection()
    statement, columns = _driver_insert(table, connection.dialect)
    await connection.exec_driver_sql(
        statement,
        [
            tuple(row[name] if convert is None else convert(row[name]) for name, convert in columns)
            for row in rows
        ],
    )


def _driver_insert(
    table: Table, dialect: Dialect
) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]:
    key = (table, dialect.name)
    known = _driver_inserts.get(key)
    if known is None:
        compiled = insert(table).compile(
            dialect=dialect, column_keys=[column.key for column in table.columns]
        )
        assert compiled.positiontup is not None, "a positional parameter style"
        columns = [
            (
                name,
                _json_text
                if isinstance(table.c[name].type, JSON)
                else _bind_processor(table.c[name].type, dialect),
            )
            for name in compiled.positiontup
        ]
        known = _driver_inserts[key] = (str(compiled), columns)
    return known


def _bind_processor(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    processor: Callable[[Any], Any] | None = column_type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return processor


def _json_text(value: Any) -> str:
    # pydantic's serializer: the same JSON value as the `json.dumps` SQLAlchemy would call
    # (NaN and infinities too), compact and UTF-8, in a sixth of the time.
    return to_json(value).decode()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def serial_id(name: str) -> Column[int]:
    """A row id the database numbers, in insertion order (a BIGINT on PostgreSQL; SQLite numbers
    only an INTEGER primary key itself)."""
    return Column(
        name, BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC when read back, on SQLite too
    (SQLite stores no zone, so without this a read would return a naive datetime)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("store timezone-aware datetimes only")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
