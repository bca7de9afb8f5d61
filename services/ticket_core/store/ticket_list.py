"""The ticket list: filters, subject search, sort orders, keyset pagination and counts, in SQL.

Why the queries look the way they do (each keeps a page at a million tickets in milliseconds):

- Without a search word the trigram index can use, one ordered, limited index scan per shown
  status, merged (UNION ALL): every status has its own index per sort order, so a page reads
  about `limit` rows per status however many closed tickets lie between them.
- With one, the matches are found once through the subject index (trigrams: `pg_trgm` GIN on
  PostgreSQL, an FTS5 trigram table on SQLite, both made by migration 0005) and sorted; the
  page is taken from them. Every word of `q` must occur in the subject, in any order, ignoring
  case; `%`, `_` and `\\` are literal. Words under three letters cannot use a trigram index
  and are checked by LIKE.
- Counts per status without `q` come from `ticket_counts`, a rollup the repository keeps in
  the same transaction as each ticket write. With `q` they are counted over the matches, and
  stop at `COUNT_CAP` per status, so a search for "a" does not read every ticket to say so.
- The cursor is the last row's sort key, so a page never repeats or skips a ticket that did
  not change while the client paged.
- Each statement is built once per shape (which filters, how many words, which statuses) and
  reused with new parameters: building them costs more than running them.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from shared.contracts.api import TicketSort
from shared.contracts.formats import TICKET_CURSOR
from shared.contracts.tickets import TicketStatus

from ..domain.errors import InvalidInput
from . import tables

HIDDEN_BY_DEFAULT = frozenset({TicketStatus.CLOSED, TicketStatus.SPAM})
ASSIGNEE_NONE = "none"
# The rollup's key for "no assignee": a primary key column cannot hold NULL.
NO_ASSIGNEE = UUID(int=0)
TRIGRAM = 3
COUNT_CAP = 1000  # counts of search matches stop here, per status


@dataclass(frozen=True, slots=True)
class TicketFilter:
    workspace_id: UUID
    statuses: frozenset[TicketStatus] | None = None  # None: all but closed and spam
    priorities: frozenset[str] | None = None
    assignee: UUID | str | None = None  # a member id, or "none"
    query: str | None = None
    sort: TicketSort = TicketSort.UPDATED
    cursor: str | None = None
    limit: int = 50

    @property
    def shown_statuses(self) -> frozenset[TicketStatus]:
        if self.statuses:
            return self.statuses
        return frozenset(TicketStatus) - HIDDEN_BY_DEFAULT

    @property
    def words(self) -> list[str]:
        return (self.query or "").casefold().split()


@dataclass(frozen=True, slots=True)
class StatusCounts:
    counts: dict[TicketStatus, int]
    capped: frozenset[TicketStatus]  # these hold at least their count (COUNT_CAP)


@dataclass(frozen=True, slots=True)
class TicketListPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    hidden_matches: dict[TicketStatus, int]
    hidden_matches_capped: frozenset[TicketStatus]


async def list_tickets(session: AsyncSession, spec: TicketFilter) -> TicketListPage:
    dialect = session.get_bind().dialect.name
    shape = _Shape.of(spec, dialect, spec.shown_statuses, cursor=bool(spec.cursor))
    params = _params(spec, dialect, limit=spec.limit + 1)
    if spec.cursor:
        names = [name for name, _descending in _sort_key(spec.sort)]
        values = _decode_cursor(spec.sort, spec.cursor)
        params.update({f"after_{name}": value for name, value in zip(names, values, strict=True)})
    # Core statements on the session's connection: the ORM's execution layer adds nothing here.
    connection = await session.connection()
    rows = [
        dict(row) for row in (await connection.execute(_page_statement(shape), params)).mappings()
    ]
    next_cursor = _encode_cursor(rows[spec.limit - 1]) if len(rows) > spec.limit else None
    hidden = await count_by_status(
        session, spec, statuses=frozenset(TicketStatus) - spec.shown_statuses
    )
    return TicketListPage(
        rows=rows[: spec.limit],
        next_cursor=next_cursor,
        hidden_matches={status: n for status, n in hidden.counts.items() if n},
        hidden_matches_capped=hidden.capped,
    )


async def count_by_status(
    session: AsyncSession, spec: TicketFilter, statuses: frozenset[TicketStatus] | None = None
) -> StatusCounts:
    """Tickets matching everything in `spec` but its status filter, per status (all
    statuses, or only `statuses`); the status filter, cursor, sort and limit are ignored."""
    wanted = statuses if statuses is not None else frozenset(TicketStatus)
    if not wanted:
        return StatusCounts({}, frozenset())
    dialect = session.get_bind().dialect.name
    shape = _Shape.of(spec, dialect, wanted, cursor=False)
    params = _params(spec, dialect, limit=COUNT_CAP + 1)
    counts = {status: 0 for status in wanted}
    connection = await session.connection()
    for status, count in (await connection.execute(_count_statement(shape), params)).all():
        counts[TicketStatus(status)] = int(count or 0)
    if not shape.words:
        return StatusCounts(counts, frozenset())  # the rollup is exact
    capped = frozenset(s for s, n in counts.items() if n > COUNT_CAP)
    return StatusCounts({s: min(n, COUNT_CAP) for s, n in counts.items()}, capped)


# -- statements, built once per shape --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    """Everything that changes a statement's SQL; the values travel as parameters."""

    dialect: str
    sort: TicketSort
    statuses: tuple[str, ...]
    cursor: bool
    priorities: bool
    assignee: str | None  # "none", "member" or None
    indexed_words: int  # searched through the trigram index
    like_words: int  # checked by LIKE (on PostgreSQL, all words; the index serves them)

    @classmethod
    def of(
        cls, spec: TicketFilter, dialect: str, statuses: frozenset[TicketStatus], cursor: bool
    ) -> "_Shape":
        indexed, like = _split_words(spec.words, dialect)
        assignee = (
            "none"
            if spec.assignee == ASSIGNEE_NONE
            else "member"
            if isinstance(spec.assignee, UUID)
            else None
        )
        return cls(
            dialect=dialect,
            sort=spec.sort,
            statuses=tuple(sorted(s.value for s in statuses)),
            cursor=cursor,
            priorities=bool(spec.priorities),
            assignee=assignee,
            indexed_words=len(indexed),
            like_words=len(like),
        )

    @property
    def words(self) -> bool:
        return bool(self.indexed_words or self.like_words)

    @property
    def uses_subject_index(self) -> bool:
        return self.indexed_words > 0


def _split_words(words: list[str], dialect: str) -> tuple[list[str], list[str]]:
    """(words the trigram index finds, words checked by LIKE)."""
    indexed = [word for word in words if len(word) >= TRIGRAM]
    short = [word for word in words if len(word) < TRIGRAM]
    if dialect == "sqlite":
        return indexed, short
    return indexed, indexed + short  # PostgreSQL's trigram index serves LIKE itself


def _params(spec: TicketFilter, dialect: str, *, limit: int) -> dict[str, Any]:
    indexed, like = _split_words(spec.words, dialect)
    params: dict[str, Any] = {"workspace_id": spec.workspace_id, "limit": limit}
    if spec.priorities:
        params["priorities"] = sorted(spec.priorities)
    if isinstance(spec.assignee, UUID):
        params["assignee"] = spec.assignee
    if dialect == "sqlite" and indexed:
        # FTS5's trigram tokenizer matches a quoted phrase as a substring.
        params["phrases"] = " ".join('"' + word.replace('"', '""') + '"' for word in indexed)
    for n, word in enumerate(like):
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params[f"word_{n}"] = f"%{escaped}%"
    return params


def _conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    """Every condition but the status filter, with the values as parameters."""
    t = tables.tickets
    conditions = [t.c.workspace_id == bindparam("workspace_id"), t.c.deleted_at.is_(None)]
    if shape.priorities:
        conditions.append(t.c.priority.in_(bindparam("priorities", expanding=True)))
    if shape.assignee == "none":
        conditions.append(t.c.assignee_id.is_(None))
    elif shape.assignee == "member":
        conditions.append(t.c.assignee_id == bindparam("assignee"))
    if shape.dialect == "sqlite" and shape.indexed_words:
        # The FTS5 table's rowids are the tickets' own (external content, kept by triggers).
        search = tables.ticket_subject_search
        conditions.append(
            literal_column("tickets.rowid").in_(
                select(search.c.rowid).where(
                    literal_column(search.name).match(bindparam("phrases"))
                )
            )
        )
    for n in range(shape.like_words):
        subject: ColumnElement[str] = t.c.subject_folded
        if shape.dialect == "postgresql" and n >= shape.indexed_words:
            # A word under three letters has no trigram: the GIN index would hand back every
            # row. Hidden from it, the word is checked while walking the status indexes.
            subject = subject.concat("")
        conditions.append(subject.like(bindparam(f"word_{n}"), escape="\\"))
    return conditions


def _sort_key(sort: TicketSort) -> list[tuple[str, bool]]:
    """(column, descending) pairs; the ticket id last makes every key unique."""
    leading = {
        TicketSort.UPDATED: [("updated_at", True)],
        TicketSort.CREATED: [("created_at", True)],
        TicketSort.PRIORITY: [("priority_rank", False), ("updated_at", True)],
    }[sort]
    return [*leading, ("id", True)]


def _order(columns: Any, sort: TicketSort) -> list[Any]:
    return [
        columns[name].desc() if descending else columns[name].asc()
        for name, descending in _sort_key(sort)
    ]


def _after_cursor(columns: Any, sort: TicketSort) -> ColumnElement[bool]:
    """Rows strictly after the cursor's row in the sort order (a keyset condition)."""
    condition: ColumnElement[bool] | None = None
    # Built from the last column outwards: (a after) or (a equal and (b after or ...)).
    for name, descending in reversed(_sort_key(sort)):
        column, value = columns[name], bindparam(f"after_{name}", type_=columns[name].type)
        beyond = column < value if descending else column > value
        condition = beyond if condition is None else or_(beyond, and_(column == value, condition))
    assert condition is not None
    return condition


@lru_cache(maxsize=512)
def _page_statement(shape: _Shape) -> Select[Any]:
    t = tables.tickets
    limit: BindParameter[int] = bindparam("limit")
    if shape.uses_subject_index:
        # Find the matches once through the subject index, then sort just those.
        sort_columns = [t.c[name] for name, _descending in _sort_key(shape.sort)]
        matches = (
            select(t.c.status, *sort_columns)
            .where(*_conditions(shape), t.c.status.in_(shape.statuses))
            .cte("matches")
            .prefix_with("MATERIALIZED")
        )
        page = select(matches.c.id)
        if shape.cursor:
            page = page.where(_after_cursor(matches.c, shape.sort))
        page_ids = page.order_by(*_order(matches.c, shape.sort)).limit(limit).subquery("page")
        return select(t).join(page_ids, t.c.id == page_ids.c.id).order_by(*_order(t.c, shape.sort))
    branches = []
    for status in shape.statuses:
        branch = select(t).where(*_conditions(shape), t.c.status == status)
        if shape.cursor:
            branch = branch.where(_after_cursor(t.c, shape.sort))
        ordered = branch.order_by(*_order(t.c, shape.sort)).limit(limit)
        branches.append(select(ordered.subquery(f"s_{status}")))
    merged = union_all(*branches).subquery("page")
    return select(merged).order_by(*_order(merged.c, shape.sort)).limit(limit)


@lru_cache(maxsize=512)
def _count_statement(shape: _Shape) -> Select[Any]:
    if not shape.words:
        c = tables.ticket_counts
        conditions = [c.c.workspace_id == bindparam("workspace_id"), c.c.status.in_(shape.statuses)]
        if shape.priorities:
            conditions.append(c.c.priority.in_(bindparam("priorities", expanding=True)))
        if shape.assignee == "none":
            conditions.append(c.c.assignee_key == NO_ASSIGNEE)
        elif shape.assignee == "member":
            conditions.append(c.c.assignee_key == bindparam("assignee"))
        return (
            select(c.c.status, func.sum(c.c.tickets).label("tickets"))
            .where(*conditions)
            .group_by(c.c.status)
        )
    # Per status, at most COUNT_CAP + 1 matches are read: enough to say "1,000 or more".
    t = tables.tickets
    per_status = []
    for status in shape.statuses:
        matched = (
            select(literal(1).label("one"))
            .where(*_conditions(shape), t.c.status == status)
            .limit(bindparam("limit"))
            .subquery(f"c_{status}")
        )
        per_status.append(
            select(literal(status).label("status"), func.count().label("tickets")).select_from(
                matched
            )
        )
    return select(union_all(*per_status).subquery("counts"))


# -- the cursor ------------------------------------------------------------------------------


def _encode_cursor(row: dict[str, Any]) -> str:
    """The row's position in every sort order (the form TICKET_CURSOR states)."""
    return ".".join(
        [
            str(_microseconds(row["updated_at"])),
            str(_microseconds(row["created_at"])),
            str(row["priority_rank"]),
            UUID(str(row["id"])).hex,
        ]
    )


def _decode_cursor(sort: TicketSort, cursor: str) -> list[Any]:
    """The cursor's values for this sort order's key. Any cursor of the right form is a
    position, whichever order gave it out, so only its form can be wrong."""
    if not TICKET_CURSOR.matches(cursor):
        raise InvalidInput(
            "invalid_cursor", f"{cursor[:140]!r} is not {TICKET_CURSOR.rule}.", field="cursor"
        )
    updated, created, rank, ticket_id = cursor.split(".")
    position = {
        "updated_at": _EPOCH + timedelta(microseconds=int(updated)),
        "created_at": _EPOCH + timedelta(microseconds=int(created)),
        "priority_rank": int(rank),
        "id": UUID(ticket_id),
    }
    return [position[name] for name, _descending in _sort_key(sort)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)
