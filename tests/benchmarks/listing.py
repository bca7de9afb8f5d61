"""The dashboard's ticket list and subject search with 100,000 and 1,000,000 tickets in one
workspace, on PostgreSQL and on SQLite.

Each database is made by the project's own migrations; the workspace and its members are
made through ticket-core's handlers; the tickets are bulk-inserted with the bare driver
(asyncpg COPY, sqlite3 executemany). While they are loaded, the tickets table's secondary
indexes (and on SQLite the FTS5 triggers) are dropped; afterwards they are recreated from
their own stored definitions and the FTS5 index is rebuilt, so the end state is the one
migration 0005 makes. `ticket_counts` is then filled with migration 0005's INSERT ... SELECT,
and the planner's statistics are gathered (VACUUM ANALYZE / ANALYZE). The larger size grows
the smaller one's database with more tickets of the same distribution.

Every query is measured two ways, interleaved, on the same database in the same run:

- service: `handlers.list_tickets` / `handlers.count_tickets` with a fresh reading unit of
  work (`core.reader()`), which is what the HTTP routes call (session, transaction, member
  check, the SQL, rows);
- raw: the SELECT statements that same service call sends, captured from the cursor with an
  SQLAlchemy `before_cursor_execute` listener, replayed with the bare driver (asyncpg, the
  stdlib sqlite3) on one open connection, fetching every row.

The target (from the issue): service p99 under 20 ms and under 3x the raw p99. It is printed,
never asserted. The default list and the rare-word search are also measured through
ticket-core's internal HTTP API (uvicorn in a subprocess on the seeded database, without
Kafka; `--no-listing-http` skips it); `--listing-explain` prints the plan of every query that
misses the target.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import random
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

from services.ticket_core import handlers
from services.ticket_core.bootstrap import MIGRATIONS_DIR, TicketCore
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.domain.tickets import URGENCY
from services.ticket_core.settings import TicketCoreSettings
from services.ticket_core.store import tables
from services.ticket_core.store.ticket_list import TicketFilter
from shared.contracts.api import Role, TicketSort
from shared.contracts.tickets import TicketStatus
from shared.migrations import upgrade_to_head
from tests.benchmarks.pipeline import postgres_database
from tests.benchmarks.stats import Figures
from tests.support.internal_credentials import internal_headers

DEFAULT_SIZES = (100_000, 1_000_000)
SIZES_ENV = "HELPDESK_BENCH_LISTING_SIZES"
MEMBERS = 20
CHUNK = 20_000  # rows per COPY / per SQLite transaction
SEED = 20261126
WARMUP = 5  # pairs of calls before measuring (fewer when they take over WARMUP_SECONDS)
WARMUP_SECONDS = 1.0
MIN_RUNS = 10  # a slow query stops after its time budget, but never before this many runs
TARGET_P99_MS = 20.0
TARGET_RATIO = 3.0

# ~85% closed, ~3% spam, the rest spread over the open statuses.
STATUS_WEIGHTS = {
    TicketStatus.CLOSED: 85.0,
    TicketStatus.SPAM: 3.0,
    TicketStatus.NEW: 3.0,
    TicketStatus.OPEN: 3.5,
    TicketStatus.IN_PROGRESS: 2.0,
    TicketStatus.WAITING_ON_CUSTOMER: 2.0,
    TicketStatus.RESOLVED: 1.5,
}
PRIORITY_WEIGHTS = {"critical": 5.0, "high": 15.0, "normal": 60.0, "low": 20.0}
PRIORITY_RANK = {priority.value: rank for priority, rank in URGENCY.items()}
UNASSIGNED_SHARE = 0.20

# Subjects are 3 to 6 words of this vocabulary (each word is in ~5% of subjects), sometimes an
# order number; one ticket in 10,000 also has RARE_WORD, one in 100 COMMON_WORD. No word of
# the vocabulary contains either, nor SHORT_STRING except "VPN".
PHRASES = (
    "cannot login after password reset",
    "invoice missing charged twice",
    "export fails dashboard slow upload error",
    "attachment too large email not received notification settings broken",
    "mobile app crashes on startup printer offline VPN keeps dropping",
    "SSO redirect loop API returns timeout billing address wrong subscription cancelled",
    "account locked report empty calendar sync delayed shipping label PDF blank",
    "integration webhook certificate expired license renewal onboarding question",
    "feature request migration stuck permissions denied team member removed",
    "backup restore laptop screen flickering keyboard layout",
)
VOCABULARY = tuple(word for phrase in PHRASES for word in phrase.split())
RARE_WORD = "chargeback"
COMMON_WORD = "refund"
TWO_WORDS = "printer offline"
SHORT_STRING = "vp"
RARE_SHARE = 0.0001
COMMON_SHARE = 0.01
SEARCHES = (RARE_WORD, COMMON_WORD, TWO_WORDS, SHORT_STRING)

COLUMNS = (
    "id",
    "workspace_id",
    "number",
    "subject",
    "subject_folded",
    "description",
    "status",
    "priority",
    "priority_rank",
    "assignee_id",
    "conversation_ids",
    "version",
    "last_sequence",
    "created_at",
    "updated_at",
    "deleted_at",
)
YEAR = timedelta(days=365)
MONTH = timedelta(days=30)

# Migration 0005's fill of the rollup, for this benchmark's one workspace.
COUNTS_FILL = (
    "INSERT INTO ticket_counts (workspace_id, status, priority, assignee_key, tickets) "
    "SELECT workspace_id, status, priority, COALESCE(assignee_id, {unassigned}), count(*) "
    "FROM tickets WHERE deleted_at IS NULL "
    "GROUP BY workspace_id, status, priority, COALESCE(assignee_id, {unassigned})"
)
POSTGRES_UNASSIGNED = "'00000000-0000-0000-0000-000000000000'::uuid"
SQLITE_UNASSIGNED = "'00000000000000000000000000000000'"

Statement = tuple[str, Any]  # (SQL as sent to the driver, its parameters)
TicketRow = tuple[Any, ...]  # values in COLUMNS order, as Python objects


@dataclass(frozen=True)
class Team:
    workspace_id: UUID
    owner_id: UUID
    member_ids: list[UUID]


@dataclass(frozen=True)
class Query:
    name: str
    spec: TicketFilter
    counts: bool = False  # count_tickets rather than list_tickets


@dataclass(frozen=True)
class Result:
    database: str
    tickets: int
    query: str
    rows: int
    service: Figures
    raw: Figures

    @property
    def ratio_p50(self) -> float:
        return self.service.percentile(50) / self.raw.percentile(50)

    @property
    def ratio_p99(self) -> float:
        return self.service.percentile(99) / self.raw.percentile(99)

    @property
    def verdict(self) -> str:
        misses = []
        if self.service.percentile(99) >= TARGET_P99_MS:
            misses.append("p99")
        if self.ratio_p99 >= TARGET_RATIO:
            misses.append("ratio")
        return "yes" if not misses else f"**no** ({', '.join(misses)})"

    @property
    def meets_target(self) -> bool:
        return self.verdict == "yes"

    def row(self) -> str:
        return (
            f"| {self.database} | {self.tickets:,} | {self.query} | {self.rows} "
            f"| {self.service.count} | {self.service.percentile(50):.1f} "
            f"| {self.service.percentile(99):.1f} | {self.raw.percentile(50):.1f} "
            f"| {self.raw.percentile(99):.1f} | x{self.ratio_p50:.1f} | x{self.ratio_p99:.1f} "
            f"| {self.verdict} |"
        )


HEADER = (
    "| database | tickets | query | rows | runs | service p50 ms | service p99 ms "
    "| raw p50 ms | raw p99 ms | ratio p50 | ratio p99 | p99 < 20 ms and < 3x raw |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


class Database:
    """One benchmark database: ticket-core's engine on it, a bare driver connection, and
    the bulk loader."""

    kind: str

    def __init__(self, url: str) -> None:
        self.url = url
        self.core: TicketCore = bootstrap_ticket_core(TicketCoreSettings(database_url=url))
        self.tickets = 0

    async def open_raw(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self.core.read_engine is not self.core.engine:
            await self.core.read_engine.dispose()
        await self.core.engine.dispose()

    async def grow(self, team: Team, size: int, matches: dict[str, int]) -> None:
        raise NotImplementedError

    async def execute_raw(self, statements: Sequence[Statement]) -> int:
        """Run the statements with the bare driver; the number of rows they returned."""
        raise NotImplementedError

    async def explain(self, statement: Statement) -> list[str]:
        raise NotImplementedError


class PostgresDatabase(Database):
    kind = "postgres"

    def __init__(self, url: str, admin_url: str) -> None:
        super().__init__(url)
        self.admin_url = admin_url
        self.driver_url = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.raw: Any = None

    async def open_raw(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        self.raw = await asyncpg.connect(self.driver_url)

    async def close(self) -> None:
        import asyncpg

        if self.raw is not None:
            await self.raw.close()
        await super().close()
        database = make_url(self.url).database
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
        finally:
            await admin.close()

    async def grow(self, team: Team, size: int, matches: dict[str, int]) -> None:
        import asyncpg

        connection = await asyncpg.connect(self.driver_url)
        try:
            indexes = await connection.fetch(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename = 'tickets' "
                "AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE conrelid = 'tickets'::regclass)"
            )
            for index in indexes:
                await connection.execute(f'DROP INDEX "{index["indexname"]}"')
            begin = time.perf_counter()
            first = self.tickets
            for rows in _ticket_chunks(team, first, size, matches):
                await connection.copy_records_to_table("tickets", records=rows, columns=COLUMNS)
                self.tickets += len(rows)
                _loaded(self.kind, self.tickets - first, size - first, begin)
            # Session-only settings: a roomier sort for the index builds.
            await connection.execute("SET maintenance_work_mem = '1GB'")
            for index in indexes:
                started = time.perf_counter()
                await connection.execute(index["indexdef"])
                print(
                    f"  {self.kind}: index {index['indexname']} built "
                    f"in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
            await connection.execute(
                "DELETE FROM ticket_counts WHERE workspace_id = $1", team.workspace_id
            )
            await connection.execute(COUNTS_FILL.format(unassigned=POSTGRES_UNASSIGNED))
            await connection.execute(
                "UPDATE workspaces SET last_ticket_number = $1 WHERE id = $2",
                size,
                team.workspace_id,
            )
            started = time.perf_counter()
            # VACUUM as autovacuum would after a bulk insert (visibility map, hint bits),
            # so it does not start in the middle of the measurements.
            await connection.execute("VACUUM (ANALYZE) tickets")
            await connection.execute("ANALYZE")
            print(
                f"  {self.kind}: ticket_counts filled, VACUUM ANALYZE "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        finally:
            await connection.close()

    async def execute_raw(self, statements: Sequence[Statement]) -> int:
        rows = 0
        for sql, parameters in statements:
            rows += len(await self.raw.fetch(sql, *parameters))
        return rows

    async def explain(self, statement: Statement) -> list[str]:
        sql, parameters = statement
        plan = await self.raw.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *parameters)
        return [str(line[0]) for line in plan]


class SqliteDatabase(Database):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__(f"sqlite+aiosqlite:///{path}")
        self.path = path
        self.raw: sqlite3.Connection | None = None

    async def open_raw(self) -> None:
        self.raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.raw.execute("PRAGMA busy_timeout=30000")
        self.raw.execute("PRAGMA mmap_size=268435456")  # as the service's read connections do

    async def close(self) -> None:
        if self.raw is not None:
            self.raw.close()
        await super().close()

    async def grow(self, team: Team, size: int, matches: dict[str, int]) -> None:
        await asyncio.to_thread(self._grow, team, size, matches)

    def _grow(self, team: Team, size: int, matches: dict[str, int]) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=OFF")  # this connection only: a throwaway load
            db.execute("PRAGMA cache_size=-524288")
            # Every index and trigger on `tickets` but the constraints' own: the list
            # indexes and the FTS5 triggers. Recreated below from the same SQL.
            saved = db.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'tickets' "
                "AND type IN ('index', 'trigger') AND sql IS NOT NULL"
            ).fetchall()
            for kind, name, _sql in saved:
                db.execute(f'DROP {kind.upper()} "{name}"')
            insert = f"INSERT INTO tickets ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 16)})"
            encode = _sqlite_encoder()
            begin = time.perf_counter()
            first = self.tickets
            for rows in _ticket_chunks(team, first, size, matches):
                db.execute("BEGIN")
                db.executemany(insert, map(encode, rows))
                db.execute("COMMIT")
                self.tickets += len(rows)
                _loaded(self.kind, self.tickets - first, size - first, begin)
            for kind, name, sql in saved:
                if kind == "index":
                    started = time.perf_counter()
                    db.execute(sql)
                    print(
                        f"  {self.kind}: index {name} built "
                        f"in {time.perf_counter() - started:.1f} s",
                        flush=True,
                    )
            started = time.perf_counter()
            db.execute(
                "INSERT INTO ticket_subject_search (ticket_subject_search) VALUES ('rebuild')"
            )
            for kind, _name, sql in saved:
                if kind == "trigger":
                    db.execute(sql)
            print(
                f"  {self.kind}: FTS5 trigram index rebuilt "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            started = time.perf_counter()
            db.execute("BEGIN")
            _fill_counts_sync(db, team, size)
            db.execute("COMMIT")
            db.execute("ANALYZE")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            print(
                f"  {self.kind}: ticket_counts filled, ANALYZE "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        finally:
            db.close()

    async def execute_raw(self, statements: Sequence[Statement]) -> int:
        assert self.raw is not None
        rows = 0
        for sql, parameters in statements:
            rows += len(self.raw.execute(sql, parameters).fetchall())
        return rows

    async def explain(self, statement: Statement) -> list[str]:
        assert self.raw is not None
        sql, parameters = statement
        plan = self.raw.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
        return [f"{row[0]:>4} {row[1]:>4} {row[3]}" for row in plan]


async def run(
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    runs: int = 200,
    seconds_per_query: float = 6.0,
    http: bool = True,
    explain: bool = False,
) -> None:
    if PRIORITY_RANK != {"critical": 0, "high": 1, "normal": 2, "low": 3}:
        raise AssertionError(f"unexpected priority ranks {PRIORITY_RANK}")
    sizes = sorted(set(sizes))
    results: list[Result] = []
    http_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-listing-") as tmp:
        databases: list[Database] = [SqliteDatabase(f"{tmp}/listing.db")]
        if admin := os.environ.get("HELPDESK_TEST_POSTGRES_URL"):
            url = await postgres_database(admin, "bench_listing")
            databases.append(PostgresDatabase(url, admin))
        else:
            print("listing: HELPDESK_TEST_POSTGRES_URL is not set; PostgreSQL is skipped")
        print(
            f"listing: sizes {', '.join(f'{s:,}' for s in sizes)} tickets in one workspace; "
            f"on {', '.join(db.kind for db in databases)}; up to {runs} runs per query "
            f"(at least {MIN_RUNS}, about {seconds_per_query:g} s each)",
            flush=True,
        )
        try:
            teams: dict[str, Team] = {}
            for database in databases:
                await upgrade_to_head(MIGRATIONS_DIR, database.url)
                teams[database.kind] = await _make_team(database.core)
                await database.open_raw()
            # Subjects matching each search, counted while the first database is loaded.
            matches = dict.fromkeys(SEARCHES, 0)
            for size in sizes:
                for database in databases:
                    team = teams[database.kind]
                    print(f"listing on {database.kind}: growing to {size:,} tickets", flush=True)
                    begin = time.perf_counter()
                    await database.grow(team, size, matches if database is databases[0] else {})
                    print(
                        f"  {database.kind}: {size:,} tickets ready "
                        f"in {time.perf_counter() - begin:.1f} s",
                        flush=True,
                    )
                    measured = await _measure_all(database, team, runs, seconds_per_query, explain)
                    results.extend(measured)
                    print("\n" + HEADER)
                    for result in measured:
                        print(result.row())
                    print(flush=True)
                    if http:
                        http_lines.extend(
                            await _measure_http(database, team, runs, seconds_per_query)
                        )
                _print_matches(size, matches)
        finally:
            for database in databases:
                await database.close()
    print("\nlisting: all figures\n" + HEADER)
    for result in results:
        print(result.row())
    misses = [r for r in results if not r.meets_target]
    print(f"\n{len(results) - len(misses)} of {len(results)} rows meet the target.")
    if http_lines:
        print("\n" + HTTP_HEADER)
        for line in http_lines:
            print(line)


# -- data --------------------------------------------------------------------------------------


async def _make_team(core: TicketCore) -> Team:
    team = await handlers.create_workspace(core.unit_of_work(), "Listing bench", "owner@bench.io")
    workspace_id, owner_id = team.workspace.id, team.owner.id
    members = [owner_id]
    for i in range(1, MEMBERS):
        role = Role.ADMIN if i < 3 else Role.MEMBER
        member = await handlers.add_member(
            core.unit_of_work(), workspace_id, owner_id, f"agent{i}@bench.io", role.value
        )
        members.append(member.id)
    return Team(workspace_id=workspace_id, owner_id=owner_id, member_ids=members)


def _ticket_chunks(
    team: Team, first: int, last: int, matches: dict[str, int]
) -> Iterator[list[TicketRow]]:
    """Tickets number first+1 .. last, CHUNK at a time; the same numbers give the same
    tickets in every database (seeded per chunk). Counts into `matches` how many subjects
    contain all the words of each search."""
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    statuses = list(STATUS_WEIGHTS)
    status_weights = _cumulative(list(STATUS_WEIGHTS.values()))
    priorities = list(PRIORITY_WEIGHTS)
    priority_weights = _cumulative(list(PRIORITY_WEIGHTS.values()))
    descriptions = _descriptions()
    searches = [(search, search.split()) for search in matches]
    for start in range(first, last, CHUNK):
        rng = random.Random(f"{SEED}:{start}")
        rows: list[TicketRow] = []
        for number in range(start + 1, min(start + CHUNK, last) + 1):
            subject = _subject(rng)
            folded = subject.casefold()
            for search, words in searches:
                if all(word in folded for word in words):
                    matches[search] += 1
            status = statuses[bisect.bisect(status_weights, rng.random() * status_weights[-1])]
            priority = priorities[
                bisect.bisect(priority_weights, rng.random() * priority_weights[-1])
            ]
            assignee = None if rng.random() < UNASSIGNED_SHARE else rng.choice(team.member_ids)
            created = now - YEAR * rng.random()
            updated = created + min(MONTH, now - created) * rng.random()
            rows.append(
                (
                    UUID(int=rng.getrandbits(128), version=4),
                    team.workspace_id,
                    number,
                    subject,
                    folded,
                    rng.choice(descriptions),
                    status.value,
                    priority,
                    PRIORITY_RANK[priority],
                    assignee,
                    "[]",
                    1,
                    1,
                    created,
                    updated,
                    None,
                )
            )
        yield rows


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _subject(rng: random.Random) -> str:
    words = rng.choices(VOCABULARY, k=rng.randint(3, 6))
    roll = rng.random()
    if roll < RARE_SHARE:
        words.insert(rng.randint(0, len(words)), RARE_WORD)
    elif roll < RARE_SHARE + COMMON_SHARE:
        words.insert(rng.randint(0, len(words)), COMMON_WORD)
    if rng.random() < 0.3:
        words.append(f"#{rng.randint(10_000, 99_999)}")
    subject = " ".join(words)
    return subject[0].upper() + subject[1:]


def _descriptions() -> list[str]:
    rng = random.Random(SEED)
    return [
        " ".join(rng.choices(VOCABULARY, k=rng.randint(15, 45))).capitalize() + "."
        for _ in range(1000)
    ]


def _sqlite_encoder() -> Callable[[TicketRow], TicketRow]:
    """Ticket values as SQLAlchemy stores them on SQLite (its own bind processors: 32 hex
    digits for a Uuid, its DATETIME text for a timestamp)."""
    dialect = sqlite_dialect.dialect()
    t = tables.tickets
    uuid_ = t.c.id.type.bind_processor(dialect)
    stamp = t.c.created_at.type.bind_processor(dialect)
    assert uuid_ is not None
    assert stamp is not None

    def encode(row: TicketRow) -> TicketRow:
        values = list(row)
        for i in (0, 1, 9):
            if values[i] is not None:
                values[i] = uuid_(values[i])
        values[13], values[14] = stamp(values[13]), stamp(values[14])
        return tuple(values)

    return encode


def _fill_counts_sync(db: sqlite3.Connection, team: Team, size: int) -> None:
    workspace = team.workspace_id.hex
    db.execute("DELETE FROM ticket_counts WHERE workspace_id = ?", (workspace,))
    db.execute(COUNTS_FILL.format(unassigned=SQLITE_UNASSIGNED))
    db.execute("UPDATE workspaces SET last_ticket_number = ? WHERE id = ?", (size, workspace))


def _loaded(kind: str, done: int, total: int, begin: float) -> None:
    step = max(total // 10, CHUNK)
    if done % step < CHUNK or done == total:
        elapsed = time.perf_counter() - begin
        print(
            f"  {kind}: {done:,}/{total:,} tickets inserted, {elapsed:.1f} s "
            f"({done / elapsed:,.0f}/s)",
            flush=True,
        )


def _print_matches(size: int, matches: dict[str, int]) -> None:
    shares = ", ".join(
        f"q={search!r} {count:,} ({count / size:.3%})" for search, count in matches.items()
    )
    print(f"subjects matching at {size:,} tickets: {shares}\n", flush=True)


# -- measuring ---------------------------------------------------------------------------------


async def _queries(database: Database, team: Team) -> list[Query]:
    base = TicketFilter(workspace_id=team.workspace_id)
    cursor = None
    for _hop in range(4):
        page = await handlers.list_tickets(
            database.core.reader(), team.owner_id, replace(base, cursor=cursor)
        )
        cursor = page.next_cursor
    return [
        Query("default list, first page", base),
        Query("page 5 (after 4 cursor hops)", replace(base, cursor=cursor)),
        Query("status=closed", replace(base, statuses=frozenset({TicketStatus.CLOSED}))),
        Query("sort=priority", replace(base, sort=TicketSort.PRIORITY)),
        Query("sort=created", replace(base, sort=TicketSort.CREATED)),
        Query("assignee=one member", replace(base, assignee=team.member_ids[1])),
        Query(f"q={RARE_WORD} (rare)", replace(base, query=RARE_WORD)),
        Query(f"q={COMMON_WORD} (common)", replace(base, query=COMMON_WORD)),
        Query(f"q={TWO_WORDS} (two words)", replace(base, query=TWO_WORDS)),
        Query(f"q={SHORT_STRING} (2 letters)", replace(base, query=SHORT_STRING)),
        Query("counts, no q (rollup)", base, counts=True),
        Query(f"counts, q={RARE_WORD}", replace(base, query=RARE_WORD), counts=True),
    ]


def _service_call(database: Database, team: Team, query: Query) -> Callable[[], Awaitable[int]]:
    core = database.core

    async def call() -> int:
        if query.counts:
            counts = await handlers.count_tickets(core.reader(), team.owner_id, query.spec)
            return sum(counts.counts.values())
        page = await handlers.list_tickets(core.reader(), team.owner_id, query.spec)
        return len(page.rows)

    return call


async def _capture(database: Database, call: Callable[[], Awaitable[int]]) -> list[Statement]:
    """The statements `call` sends to the driver, but the transaction's own."""
    seen: list[Statement] = []

    def listener(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        seen.append((statement, parameters))

    engine = database.core.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        await call()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    transaction = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return [
        (sql, params) for sql, params in seen if not sql.lstrip().upper().startswith(transaction)
    ]


async def _timed_pairs(
    subject: Callable[[], Awaitable[Any]],
    raw: Callable[[], Awaitable[Any]],
    runs: int,
    seconds: float,
) -> tuple[list[float], list[float], float]:
    """Latencies (ms) of `subject` and `raw`, called alternately; the time it took."""
    warm_until = time.perf_counter() + WARMUP_SECONDS
    for _ in range(WARMUP):
        await subject()
        await raw()
        if time.perf_counter() > warm_until:
            break
    subject_ms: list[float] = []
    raw_ms: list[float] = []
    begin = time.perf_counter()
    deadline = begin + seconds
    while len(subject_ms) < runs and (len(subject_ms) < MIN_RUNS or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        await subject()
        t1 = time.perf_counter()
        await raw()
        t2 = time.perf_counter()
        subject_ms.append((t1 - t0) * 1000)
        raw_ms.append((t2 - t1) * 1000)
    return subject_ms, raw_ms, time.perf_counter() - begin


async def _measure_all(
    database: Database, team: Team, runs: int, seconds: float, explain: bool
) -> list[Result]:
    results = []
    for query in await _queries(database, team):
        service = _service_call(database, team, query)
        statements = await _capture(database, service)
        rows = await service()
        raw_rows = await database.execute_raw(statements)

        async def raw(statements: list[Statement] = statements) -> int:
            return await database.execute_raw(statements)

        service_ms, raw_ms, elapsed = await _timed_pairs(service, raw, runs, seconds)
        result = Result(
            database=database.kind,
            tickets=database.tickets,
            query=query.name,
            rows=rows,
            service=Figures(query.name, len(service_ms), elapsed, service_ms),
            raw=Figures(f"{query.name} raw", len(raw_ms), elapsed, raw_ms),
        )
        print(
            f"  {database.kind} {database.tickets:,} | {query.name}: {len(service_ms)} runs, "
            f"service p50 {result.service.percentile(50):.1f} ms "
            f"p99 {result.service.percentile(99):.1f} ms, raw p50 "
            f"{result.raw.percentile(50):.1f} ms p99 {result.raw.percentile(99):.1f} ms "
            f"({len(statements)} statements, {raw_rows} rows raw) -> {result.verdict}",
            flush=True,
        )
        if explain and not result.meets_target:
            for sql, parameters in statements:
                if "FROM members" in sql:
                    continue
                print(f"    plan of: {sql[:120].replace(chr(10), ' ')} ...")
                for line in await database.explain((sql, parameters)):
                    print(f"      {line}")
        results.append(result)
    return results


# -- through HTTP ------------------------------------------------------------------------------

HTTP_HEADER = (
    "| database | tickets | query (GET /internal/v1/tickets) | runs | HTTP p50 ms | HTTP p99 ms "
    "| raw p50 ms | raw p99 ms | ratio p50 | ratio p99 |\n|---|---|---|---|---|---|---|---|---|---|"
)


async def _measure_http(database: Database, team: Team, runs: int, seconds: float) -> list[str]:
    """The default list and the rare-word search through ticket-core's internal API, served
    by uvicorn in its own process on this database (without Kafka: lifespan off)."""
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "services.ticket_core.entrypoints.http_api:create_app",
        "--factory",
        "--lifespan",
        "off",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        env={**os.environ, "TICKET_CORE_DATABASE_URL": database.url},
    )
    lines = []
    try:
        # As the gateway calls it, with a credential; long-lived, as a run may last minutes.
        headers = internal_headers(
            "ticket-core", team.workspace_id, team.owner_id, Role.OWNER, lifetime_seconds=86_400
        )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30.0
        ) as client:
            await _wait_until_up(client)
            base = TicketFilter(workspace_id=team.workspace_id)
            for name, params, spec in (
                ("default list, first page", {}, base),
                (f"q={RARE_WORD} (rare)", {"q": RARE_WORD}, replace(base, query=RARE_WORD)),
            ):
                statements = await _capture(
                    database, _service_call(database, team, Query(name, spec))
                )

                async def get(params: dict[str, str] = params) -> None:
                    response = await client.get("/internal/v1/tickets", params=params)
                    response.raise_for_status()

                async def raw(statements: list[Statement] = statements) -> int:
                    return await database.execute_raw(statements)

                http_ms, raw_ms, elapsed = await _timed_pairs(get, raw, runs, seconds)
                over_http = Figures(name, len(http_ms), elapsed, http_ms)
                bare = Figures(name, len(raw_ms), elapsed, raw_ms)
                line = (
                    f"| {database.kind} | {database.tickets:,} | {name} | {over_http.count} "
                    f"| {over_http.percentile(50):.1f} | {over_http.percentile(99):.1f} "
                    f"| {bare.percentile(50):.1f} | {bare.percentile(99):.1f} "
                    f"| x{over_http.percentile(50) / bare.percentile(50):.1f} "
                    f"| x{over_http.percentile(99) / bare.percentile(99):.1f} |"
                )
                print(f"  HTTP {line}", flush=True)
                lines.append(line)
    finally:
        server.terminate()
        await server.wait()
    return lines


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_until_up(client: httpx.AsyncClient) -> None:
    deadline = time.perf_counter() + 30
    while True:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            if time.perf_counter() > deadline:
                raise
        await asyncio.sleep(0.1)


def sizes_from(text: str | None) -> list[int]:
    """`--listing-sizes` / HELPDESK_BENCH_LISTING_SIZES: comma-separated ticket counts."""
    if not text:
        return list(DEFAULT_SIZES)
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
