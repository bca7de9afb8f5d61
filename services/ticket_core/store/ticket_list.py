"""The ticket list: filters, subject search and keyset pagination, in SQL.

Ordered by `updated_at` then `id`, newest first; the cursor is the last row's pair, so a page
never repeats or skips a ticket that did not change while the client paged.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.tickets import TicketStatus

from ..domain.errors import InvalidInput
from . import tables

HIDDEN_BY_DEFAULT = frozenset({TicketStatus.CLOSED, TicketStatus.SPAM})
ASSIGNEE_NONE = "none"


@dataclass(frozen=True, slots=True)
class TicketFilter:
    workspace_id: UUID
    statuses: frozenset[TicketStatus] | None = None  # None: all but closed and spam
    priorities: frozenset[str] | None = None
    assignee: UUID | str | None = None  # a member id, or "none"
    query: str | None = None
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


async def list_tickets(session: AsyncSession, spec: TicketFilter) -> TicketListPage:
    t = tables.tickets
    shown = spec.shown_statuses
    query = (
        _matching(spec)
        .where(t.c.status.in_([s.value for s in shown]))
        .order_by(t.c.updated_at.desc(), t.c.id.desc())
        .limit(spec.limit + 1)
    )
    if spec.cursor:
        updated_at, ticket_id = _decode_cursor(spec.cursor)
        query = query.where(
            or_(t.c.updated_at < updated_at, and_(t.c.updated_at == updated_at, t.c.id < ticket_id))
        )
    rows = [dict(row) for row in (await session.execute(query)).mappings()]
    next_cursor = _encode_cursor(rows[spec.limit - 1]) if len(rows) > spec.limit else None
    hidden = (
        await session.execute(
            _matching(spec, columns=(t.c.status, func.count()))
            .where(t.c.status.not_in([s.value for s in shown]))
            .group_by(t.c.status)
        )
    ).all()
    return TicketListPage(
        rows=rows[: spec.limit],
        next_cursor=next_cursor,
        hidden_matches={TicketStatus(status): int(count) for status, count in hidden},
    )


def _matching(spec: TicketFilter, columns: tuple[Any, ...] | None = None) -> Select[Any]:
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
        # Literal match: the user's %, _ and \\ are escaped, never wildcards.
        escaped = (
            spec.query.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        )
        query = query.where(t.c.subject_folded.like(f"%{escaped}%", escape="\\"))
    return query


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["updated_at"].isoformat(), str(row["id"])])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        updated_at, ticket_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(updated_at), UUID(ticket_id)
    except (ValueError, TypeError, binascii.Error) as error:
        raise InvalidInput(
            "invalid_cursor",
            "The cursor is not one this API gave out; start again without it.",
            field="cursor",
        ) from error
