"""The ticket list: filters, subject search, sort orders, keyset pagination and counts, in SQL.

Why the queries look the way they do (each keeps a page at a million tickets in milliseconds):

- One ordered, limited scan per shown status, merged (UNION ALL): every status has its own
  index per sort order, so a page reads about `limit` rows per status however many closed
  tickets lie between them.
- Subject search uses an index that finds substrings: trigrams on PostgreSQL (`pg_trgm`, GIN)
  and an FTS5 trigram table on SQLite, both made by migration 0005. Every word of `q` must
  occur in the subject, in any order, ignoring case; the user's `%`, `_` and `\\` are
  literal. Words under three letters cannot use a trigram index and are checked by LIKE.
- Counts per status without `q` come from `ticket_counts`, a rollup the repository keeps in
  the same transaction as each ticket write; with `q` they are counted over the matches.
- The cursor is the last row's sort key, so a page never repeats or skips a ticket that did
  not change while the client paged.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.api import TicketSort
from shared.contracts.tickets import TicketStatus

from ..domain.errors import InvalidInput
from . import tables

HIDDEN_BY_DEFAULT = frozenset({TicketStatus.CLOSED, TicketStatus.SPAM})
ASSIGNEE_NONE = "none"
# The rollup's key for "no assignee": a primary key column cannot hold NULL.
NO_ASSIGNEE = UUID(int=0)
TRIGRAM = 3


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


@dataclass(frozen=True, slots=True)
class TicketListPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    hidden_matches: dict[TicketStatus, int]


def _sort_key(sort: TicketSort) -> list[tuple[str, bool]]:
    """(column, descending) pairs; the ticket id last makes every key unique."""
    leading = {
        TicketSort.UPDATED: [("updated_at", True)],
        TicketSort.CREATED: [("created_at", True)],
        TicketSort.PRIORITY: [("priority_rank", False), ("updated_at", True)],
    }[sort]
    return [*leading, ("id", True)]


async def list_tickets(session: AsyncSession, spec: TicketFilter) -> TicketListPage:
    t = tables.tickets
    dialect = session.get_bind().dialect.name
    key = _sort_key(spec.sort)
    after = _after_cursor(spec) if spec.cursor else None
    branches = []
    for status in sorted(spec.shown_statuses):
        branch = _matching(spec, dialect).where(t.c.status == status.value)
        if after is not None:
            branch = branch.where(after)
        branches.append(
            select(branch.order_by(*_order(t.c, key)).limit(spec.limit + 1).subquery(f"s_{status}"))
        )
    merged = union_all(*branches).subquery("page")
    rows = [
        dict(row)
        for row in (
            await session.execute(
                select(merged).order_by(*_order(merged.c, key)).limit(spec.limit + 1)
            )
        ).mappings()
    ]
    next_cursor = (
        _encode_cursor(spec.sort, rows[spec.limit - 1]) if len(rows) > spec.limit else None
    )
    hidden = frozenset(TicketStatus) - spec.shown_statuses
    counts = await count_by_status(session, spec, statuses=hidden)
    return TicketListPage(
        rows=rows[: spec.limit],
        next_cursor=next_cursor,
        hidden_matches={status: n for status, n in counts.items() if n},
    )


async def count_by_status(
    session: AsyncSession, spec: TicketFilter, statuses: frozenset[TicketStatus] | None = None
) -> dict[TicketStatus, int]:
    """Tickets matching everything in `spec` but its status filter, per status (all
    statuses, or only `statuses`); the status filter, cursor, sort and limit are ignored."""
    wanted = [s.value for s in (statuses if statuses is not None else frozenset(TicketStatus))]
    if not wanted:
        return {}
    query: Select[Any]
    if spec.query and spec.query.split():
        t = tables.tickets
        dialect = session.get_bind().dialect.name
        query = (
            _matching(spec, dialect, columns=(t.c.status, func.count()))
            .where(t.c.status.in_(wanted))
            .group_by(t.c.status)
        )
    else:
        c = tables.ticket_counts
        conditions = [c.c.workspace_id == spec.workspace_id, c.c.status.in_(wanted)]
        if spec.priorities:
            conditions.append(c.c.priority.in_(spec.priorities))
        if spec.assignee == ASSIGNEE_NONE:
            conditions.append(c.c.assignee_key == NO_ASSIGNEE)
        elif isinstance(spec.assignee, UUID):
            conditions.append(c.c.assignee_key == spec.assignee)
        query = (
            select(c.c.status, func.sum(c.c.tickets).label("tickets"))
            .where(*conditions)
            .group_by(c.c.status)
        )
    counts = {TicketStatus(status): 0 for status in wanted}
    for status, count in (await session.execute(query)).all():
        counts[TicketStatus(status)] = int(count or 0)
    return counts


def _matching(
    spec: TicketFilter, dialect: str, columns: tuple[Any, ...] | None = None
) -> Select[Any]:
    """Every condition but the status filter."""
    t = tables.tickets
    query = select(*(columns or (t,))).where(
        t.c.workspace_id == spec.workspace_id, t.c.deleted_at.is_(None)
    )
    if spec.priorities:
        query = query.where(t.c.priority.in_(spec.priorities))
    if spec.assignee == ASSIGNEE_NONE:
        query = query.where(t.c.assignee_id.is_(None))
    elif isinstance(spec.assignee, UUID):
        query = query.where(t.c.assignee_id == spec.assignee)
    if spec.query:
        for condition in _subject_contains_words(spec.query, dialect):
            query = query.where(condition)
    return query


def _subject_contains_words(query: str, dialect: str) -> list[ColumnElement[bool]]:
    t = tables.tickets
    words = query.casefold().split()
    conditions: list[ColumnElement[bool]] = []
    if dialect == "sqlite":
        # FTS5's trigram tokenizer matches a quoted phrase as a substring; its rowids are the
        # tickets' own (an external-content table kept in step by triggers).
        indexed = [word for word in words if len(word) >= TRIGRAM]
        if indexed:
            phrases = " ".join('"' + word.replace('"', '""') + '"' for word in indexed)
            conditions.append(
                literal_column("tickets.rowid").in_(
                    select(tables.ticket_subject_search.c.rowid).where(
                        literal_column(tables.ticket_subject_search.name).match(phrases)
                    )
                )
            )
        words = [word for word in words if len(word) < TRIGRAM]
    for word in words:
        # On PostgreSQL the GIN trigram index serves these LIKEs directly.
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(t.c.subject_folded.like(f"%{escaped}%", escape="\\"))
    return conditions


def _order(columns: Any, key: list[tuple[str, bool]]) -> list[Any]:
    return [columns[name].desc() if descending else columns[name].asc() for name, descending in key]


def _after_cursor(spec: TicketFilter) -> ColumnElement[bool]:
    """Rows strictly after the cursor's row in the sort order (a keyset condition)."""
    t = tables.tickets
    key = _sort_key(spec.sort)
    values = _decode_cursor(spec.sort, spec.cursor or "", len(key))
    condition: ColumnElement[bool] | None = None
    # Built from the last column outwards: (a after) or (a equal and (b after or ...)).
    for (name, descending), value in reversed(list(zip(key, values, strict=True))):
        column = t.c[name]
        beyond = column < value if descending else column > value
        condition = beyond if condition is None else or_(beyond, and_(column == value, condition))
    assert condition is not None
    return condition


def _encode_cursor(sort: TicketSort, row: dict[str, Any]) -> str:
    values = []
    for name, _descending in _sort_key(sort):
        value = row[name]
        values.append(value.isoformat() if isinstance(value, datetime) else str(value))
    raw = json.dumps([sort.value, *values])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(sort: TicketSort, cursor: str, length: int) -> list[Any]:
    try:
        sort_name, *raw = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if sort_name != sort.value or len(raw) != length:
            raise ValueError("the cursor belongs to another sort order")
        values: list[Any] = []
        for (name, _descending), value in zip(_sort_key(sort), raw, strict=True):
            if name == "id":
                values.append(UUID(value))
            elif name == "priority_rank":
                values.append(int(value))
            else:
                values.append(datetime.fromisoformat(value))
        return values
    except (ValueError, TypeError, binascii.Error) as error:
        raise InvalidInput(
            "invalid_cursor",
            "The cursor is not one this API gave out for this sort order; start again without it.",
            field="cursor",
        ) from error
