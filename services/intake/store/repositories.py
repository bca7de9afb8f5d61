"""intake's reads and writes, in plain SQL. The repositories of assistants, requests and
conversations remember what they loaded or added (`seen`), so that the unit of work publishes
what those recorded; those loaded to be changed are locked for the transaction (on
PostgreSQL), so two deliveries never number their events the same. Every handler takes a
request's row before a conversation's, so that two transactions never wait for each other."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from sqlalchemy import (
    RowMapping,
    Select,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.widget import (
    ConversationMessage,
    MessageRole,
    RefusalCount,
    RejectionReason,
    RequestStatus,
)

from ..domain.assistants import Assistant
from ..domain.conversations import Conversation
from ..domain.requests import AssistantSettings, RateWindows
from ..domain.ticket_requests import TicketRequest
from ..domain.widget_access import RefusalBatch, RefusalSample
from . import tables

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Loaded = TypeVar("Loaded", bound="DataclassInstance")


def _from_row(kind: type[Loaded], row: RowMapping, **converted: Any) -> Loaded:
    """A domain object from a row whose columns bear its fields' names; `converted`: the
    fields whose stored form differs (or that no column holds)."""
    stored = {
        name: row[name] for name in _field_names(kind) if name in row and name not in converted
    }
    return kind(**stored, **converted)


@cache
def _field_names(kind: type[DataclassInstance]) -> tuple[str, ...]:
    # `fields()` builds its answer anew on every call: once per kind instead of once per row.
    return tuple(f.name for f in fields(kind))


def _reason(row: RowMapping) -> RejectionReason | None:
    return RejectionReason(row["reason"]) if row["reason"] else None


class _Repository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _first(self, query: Select[Any]) -> RowMapping | None:
        row: RowMapping | None = (await self._session.execute(query)).mappings().first()
        return row

    async def _all(self, query: Select[Any]) -> list[RowMapping]:
        return list((await self._session.execute(query)).mappings())


def _settings(row: RowMapping) -> AssistantSettings:
    return _from_row(AssistantSettings, row, allowed_origins=tuple(row["allowed_origins"] or ()))


class AssistantRepository(_Repository):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.seen: list[Assistant] = []

    async def get(self, assistant_id: str) -> AssistantSettings | None:
        a = tables.assistants
        row = await self._first(select(a).where(a.c.assistant_id == assistant_id))
        return None if row is None else _settings(row)

    async def get_many(self, assistant_ids: Collection[str]) -> dict[str, AssistantSettings]:
        a = tables.assistants
        rows = await self._all(select(a).where(a.c.assistant_id.in_(sorted(assistant_ids))))
        return {row["assistant_id"]: _settings(row) for row in rows}

    async def of_workspace(self, workspace_id: UUID, limit: int) -> list[AssistantSettings]:
        """The workspace's assistants (those it saved ticket settings for), by id."""
        a = tables.assistants
        rows = await self._session.execute(
            select(a)
            .where(a.c.workspace_id == workspace_id)
            .order_by(a.c.assistant_id)
            .limit(limit)
        )
        return [_settings(row) for row in rows.mappings()]

    async def by_widget_key(self, widget_key: str) -> AssistantSettings | None:
        """The assistant whose current or replaced key this is (the caller compares)."""
        a = tables.assistants
        row = await self._first(
            select(a).where(
                or_(a.c.widget_key == widget_key, a.c.previous_widget_key == widget_key)
            )
        )
        return None if row is None else _settings(row)

    async def origin_listed(self, origin: str) -> bool:
        o = tables.assistant_origins
        return bool(await self._session.scalar(select(exists().where(o.c.origin == origin))))

    async def some_open(self) -> bool:
        """Whether some assistant lists no origins (accepts calls from any)."""
        a, o = tables.assistants, tables.assistant_origins
        listed = select(o.c.assistant_id).where(o.c.assistant_id == a.c.assistant_id).exists()
        first_open = select(a.c.assistant_id).where(~listed).limit(1)
        return await self._session.scalar(first_open) is not None

    async def load(self, assistant_id: str) -> Assistant | None:
        """The assistant, locked to be changed."""
        a = tables.assistants
        row = await self._first(select(a).where(a.c.assistant_id == assistant_id).with_for_update())
        if row is None:
            return None
        assistant = Assistant(_settings(row), last_sequence=row["last_sequence"])
        self.seen.append(assistant)
        return assistant

    async def save(self, assistant: Assistant) -> None:
        """Store the settings with their changes in the history, if they changed."""
        if not assistant.unsaved_changes:
            return
        await self._write_settings(assistant)
        changes = assistant.unsaved_changes
        if any("allowed_origins" in change.changes for change in changes):
            await self._write_origins(assistant.settings)
        await self._session.execute(
            insert(tables.assistant_settings_changes),
            [
                {"assistant_id": assistant.settings.assistant_id, **asdict(change)}
                for change in changes
            ],
        )
        changes.clear()

    async def _write_settings(self, assistant: Assistant) -> None:
        a, settings = tables.assistants, assistant.settings
        values = {
            "workspace_id": settings.workspace_id,
            "ticket_creation_enabled": settings.ticket_creation_enabled,
            "require_contact_info": settings.require_contact_info,
            "allowed_origins": list(settings.allowed_origins),
            "identity_verification": settings.identity_verification,
            "widget_key": settings.widget_key,
            "previous_widget_key": settings.previous_widget_key,
            "identity_secret": settings.identity_secret,
            "last_sequence": assistant.last_sequence,
            "updated_at": assistant.unsaved_changes[-1].changed_at,
        }
        if assistant.stored:
            await self._session.execute(
                update(a).where(a.c.assistant_id == settings.assistant_id).values(**values)
            )
            return
        await self._session.execute(insert(a).values(assistant_id=settings.assistant_id, **values))
        assistant.stored = True
        self.seen.append(assistant)

    async def _write_origins(self, settings: AssistantSettings) -> None:
        o = tables.assistant_origins
        await self._session.execute(delete(o).where(o.c.assistant_id == settings.assistant_id))
        if settings.allowed_origins:
            await self._session.execute(
                insert(o),
                [
                    {"assistant_id": settings.assistant_id, "origin": origin}
                    for origin in settings.allowed_origins
                ],
            )

    async def history(self, assistant_id: str) -> list[RowMapping]:
        c = tables.assistant_settings_changes
        return await self._all(
            select(c.c.changed_at, c.c.changed_by, c.c.changes)
            .where(c.c.assistant_id == assistant_id)
            .order_by(c.c.id.desc())
        )


def _ticket_request(row: RowMapping) -> TicketRequest:
    return _from_row(TicketRequest, row, status=RequestStatus(row["status"]), reason=_reason(row))


class RequestRepository(_Repository):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.seen: list[TicketRequest] = []

    def _remember(self, row: RowMapping) -> TicketRequest:
        ticket_request = _ticket_request(row)
        self.seen.append(ticket_request)
        return ticket_request

    async def get(self, request_id: str) -> TicketRequest | None:
        """To answer with (not locked)."""
        r = tables.ticket_requests
        row = await self._first(select(r).where(r.c.request_id == request_id))
        return None if row is None else self._remember(row)

    async def by_commands(self, command_ids: Collection[UUID]) -> dict[UUID, TicketRequest]:
        """The requests the commands were sent for, by command id, locked to be decided."""
        r = tables.ticket_requests
        rows = await self._all(
            select(r)
            .where(r.c.command_id.in_(sorted(command_ids)))
            .order_by(r.c.request_id)
            .with_for_update()
        )
        return {row["command_id"]: self._remember(row) for row in rows}

    async def pending_before(self, moment: datetime) -> list[TicketRequest]:
        """Pending requests received before `moment`, locked to be decided (those another
        transaction holds are left to it)."""
        r = tables.ticket_requests
        query = select(r).where(r.c.status == RequestStatus.PENDING.value, r.c.received_at < moment)
        rows = await self._all(query.with_for_update(skip_locked=True))
        return [self._remember(row) for row in rows]

    async def get_many(self, request_ids: Collection[str]) -> dict[str, TicketRequest]:
        """To answer with (not locked), by id."""
        r = tables.ticket_requests
        rows = await self._all(select(r).where(r.c.request_id.in_(sorted(request_ids))))
        return {row["request_id"]: self._remember(row) for row in rows}

    async def add_all(self, ticket_requests: Sequence[TicketRequest]) -> None:
        if not ticket_requests:
            return
        stored = [f.name for f in fields(TicketRequest) if f.name != "pending_messages"]
        await self._session.execute(
            insert(tables.ticket_requests),
            [{name: getattr(each, name) for name in stored} for each in ticket_requests],
        )
        self.seen.extend(ticket_requests)

    async def save_all(self, ticket_requests: Sequence[TicketRequest]) -> None:
        """Write decided requests' outcomes, in one statement (executed per row)."""
        if not ticket_requests:
            return
        r = tables.ticket_requests
        await self._session.execute(
            update(r)
            .where(r.c.request_id == bindparam("b_request_id"))
            .values(
                {
                    name: bindparam(f"b_{name}")
                    for name in (
                        "status",
                        "reason",
                        "detail",
                        "ticket_id",
                        "ticket_number",
                        "decided_at",
                        "last_sequence",
                    )
                }
            ),
            [
                {
                    "b_request_id": each.request_id,
                    "b_status": each.status.value,
                    "b_reason": each.reason.value if each.reason else None,
                    "b_detail": each.detail,
                    "b_ticket_id": each.ticket_id,
                    "b_ticket_number": each.ticket_number,
                    "b_decided_at": each.decided_at,
                    "b_last_sequence": each.last_sequence,
                }
                for each in ticket_requests
            ],
        )

    async def rate_windows(
        self, conversations: Collection[tuple[str, str]], now: datetime, window_seconds: int
    ) -> RateWindows:
        """How many requests each assistant, and each (assistant, conversation), of
        `conversations` received in the window before `now`: two statements for a batch."""
        r = tables.ticket_requests
        in_window = r.c.received_at > now - timedelta(seconds=window_seconds)
        assistant_ids = sorted({assistant_id for assistant_id, _ in conversations})
        per_assistant = await self._session.execute(
            select(r.c.assistant_id, func.count())
            .where(r.c.assistant_id.in_(assistant_ids), in_window)
            .group_by(r.c.assistant_id)
        )
        per_conversation = await self._session.execute(
            select(r.c.assistant_id, r.c.conversation_id, func.count())
            .where(tuple_(r.c.assistant_id, r.c.conversation_id).in_(sorted(conversations)))
            .where(in_window)
            .group_by(r.c.assistant_id, r.c.conversation_id)
        )
        return RateWindows(
            {assistant_id: int(count) for assistant_id, count in per_assistant},
            {(a, c): int(count) for a, c, count in per_conversation},
        )

    async def for_assistant(
        self, workspace_id: UUID, assistant_id: str, status: RequestStatus | None, limit: int
    ) -> list[TicketRequest]:
        """The newest requests of this workspace's assistant (requests nobody's assistant
        took, workspace-less, are never among them)."""
        r = tables.ticket_requests
        query = select(r).where(r.c.workspace_id == workspace_id, r.c.assistant_id == assistant_id)
        if status is not None:
            query = query.where(r.c.status == status.value)
        rows = await self._all(query.order_by(r.c.received_at.desc()).limit(limit))
        return [self._remember(row) for row in rows]


def _sample(row: RowMapping) -> RefusalSample:
    return _from_row(RefusalSample, row, reason=RejectionReason(row["reason"]))


class RefusalRepository(_Repository):
    """Refused widget calls: counts per (assistant, reason, minute), and samples."""

    async def write(self, batch: RefusalBatch, sample_size: int) -> None:
        await self._add_counts(batch.counts)
        if not batch.samples:
            return
        s = tables.refusal_samples
        await self._session.execute(
            insert(s),
            [
                {
                    "assistant_id": sample.assistant_id,
                    "request_id": sample.request_id,
                    "conversation_id": sample.conversation_id,
                    "reason": sample.reason.value,
                    "detail": sample.detail,
                    "received_at": sample.received_at,
                }
                for sample in batch.samples
            ],
        )
        for assistant_id in sorted({sample.assistant_id for sample in batch.samples}):
            await self._keep_newest(assistant_id, sample_size)

    async def _add_counts(self, counts: dict[tuple[str, str, datetime], int]) -> None:
        c = tables.refusal_counts
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        for (assistant_id, reason, minute), count in sorted(counts.items()):
            upsert = dialect.insert(c).values(
                assistant_id=assistant_id, reason=reason, minute=minute, count=count
            )
            await self._session.execute(
                upsert.on_conflict_do_update(
                    index_elements=[c.c.assistant_id, c.c.reason, c.c.minute],
                    set_={"count": c.c.count + upsert.excluded.count},
                )
            )

    async def _keep_newest(self, assistant_id: str, sample_size: int) -> None:
        s = tables.refusal_samples
        oldest_kept = await self._session.scalar(
            select(s.c.id)
            .where(s.c.assistant_id == assistant_id)
            .order_by(s.c.id.desc())
            .offset(sample_size - 1)
            .limit(1)
        )
        if oldest_kept is not None:
            await self._session.execute(
                delete(s).where(s.c.assistant_id == assistant_id, s.c.id < oldest_kept)
            )

    async def prune(self, before: datetime) -> None:
        c = tables.refusal_counts
        await self._session.execute(delete(c).where(c.c.minute < before))

    async def counts(self, assistant_id: str, since: datetime) -> list[RefusalCount]:
        c = tables.refusal_counts
        rows = await self._all(
            select(c.c.minute, c.c.reason, c.c.count)
            .where(c.c.assistant_id == assistant_id, c.c.minute >= since)
            .order_by(c.c.minute.desc(), c.c.reason)
        )
        return [RefusalCount.model_validate(dict(row)) for row in rows]

    async def samples(
        self, assistant_id: str, limit: int, request_id: str | None = None
    ) -> list[RefusalSample]:
        """The newest sampled refusals of the assistant (of one request id, if given)."""
        s = tables.refusal_samples
        query = select(s).where(s.c.assistant_id == assistant_id)
        if request_id is not None:
            query = query.where(s.c.request_id == request_id)
        return [_sample(row) for row in await self._all(query.order_by(s.c.id.desc()).limit(limit))]


class ConversationRepository(_Repository):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.seen: list[Conversation] = []
        self._stored: set[tuple[str, str]] = set()

    async def get(self, assistant_id: str, conversation_id: str) -> Conversation | None:
        """The assistant's conversation with its messages, locked to be changed."""
        c = tables.conversations
        row = await self._first(
            select(c)
            .where(c.c.assistant_id == assistant_id, c.c.conversation_id == conversation_id)
            .with_for_update()
        )
        return None if row is None else await self._loaded(row)

    async def get_many(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], Conversation]:
        """`get` for many (assistant, conversation) keys, locked in key order (two batches
        never wait for each other's rows), with their messages: two statements."""
        c, m = tables.conversations, tables.conversation_messages
        wanted = sorted(keys)
        rows = await self._all(
            select(c)
            .where(tuple_(c.c.assistant_id, c.c.conversation_id).in_(wanted))
            .order_by(c.c.assistant_id, c.c.conversation_id)
            .with_for_update()
        )
        if not rows:
            return {}
        messages: dict[tuple[str, str], list[ConversationMessage]] = {}
        for r in await self._all(
            select(m.c.assistant_id, m.c.conversation_id, m.c.role, m.c.text, m.c.sent_at)
            .where(
                tuple_(m.c.assistant_id, m.c.conversation_id).in_(
                    [(row["assistant_id"], row["conversation_id"]) for row in rows]
                )
            )
            .order_by(m.c.sent_at, m.c.id)
        ):
            messages.setdefault((r["assistant_id"], r["conversation_id"]), []).append(
                ConversationMessage(
                    role=MessageRole(r["role"]), text=r["text"], sent_at=r["sent_at"]
                )
            )
        loaded: dict[tuple[str, str], Conversation] = {}
        for row in rows:
            key = (row["assistant_id"], row["conversation_id"])
            loaded[key] = self._remember(
                _from_row(Conversation, row, messages=messages.get(key, []))
            )
        return loaded

    async def link_tickets(self, tickets: dict[tuple[str, str], UUID]) -> None:
        """Each (assistant, conversation)'s ticket, in one statement (executed per row): a
        link changes nothing else of a conversation and records no event."""
        if not tickets:
            return
        c = tables.conversations
        await self._session.execute(
            update(c)
            .where(
                c.c.assistant_id == bindparam("b_assistant_id"),
                c.c.conversation_id == bindparam("b_conversation_id"),
            )
            .values(ticket_id=bindparam("b_ticket_id")),
            [
                {"b_assistant_id": a, "b_conversation_id": c_id, "b_ticket_id": ticket_id}
                for (a, c_id), ticket_id in sorted(tickets.items())
            ],
        )

    async def find(self, workspace_id: UUID, conversation_id: str) -> Conversation | None:
        """A conversation of this workspace, to read."""
        c = tables.conversations
        row = await self._first(
            select(c).where(
                c.c.workspace_id == workspace_id, c.c.conversation_id == conversation_id
            )
        )
        return None if row is None else await self._loaded(row)

    async def _loaded(self, row: RowMapping) -> Conversation:
        m = tables.conversation_messages
        rows = await self._all(
            select(m.c.role, m.c.text, m.c.sent_at)
            .where(
                m.c.assistant_id == row["assistant_id"],
                m.c.conversation_id == row["conversation_id"],
            )
            .order_by(m.c.sent_at, m.c.id)
        )
        messages = [
            ConversationMessage(role=MessageRole(r["role"]), text=r["text"], sent_at=r["sent_at"])
            for r in rows
        ]
        return self._remember(_from_row(Conversation, row, messages=messages))

    def _remember(self, conversation: Conversation) -> Conversation:
        self._stored.add((conversation.assistant_id, conversation.conversation_id))
        self.seen.append(conversation)
        return conversation

    async def save(self, conversation: Conversation) -> None:
        """Store a new conversation, or what changed in a loaded one, and its new messages."""
        await self.save_all([conversation])

    async def save_all(self, conversations: Sequence[Conversation]) -> None:
        """`save` for many: the new ones in one statement, their messages in one."""
        c = tables.conversations
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for conversation in conversations:
            key = (conversation.assistant_id, conversation.conversation_id)
            values = {
                "ticket_id": conversation.ticket_id,
                "last_sequence": conversation.last_sequence,
            }
            if key in self._stored:
                changed.append({"b_assistant_id": key[0], "b_conversation_id": key[1], **values})
                continue
            new.append(
                {
                    "assistant_id": key[0],
                    "conversation_id": key[1],
                    "workspace_id": conversation.workspace_id,
                    **values,
                }
            )
            self._remember(conversation)
        if changed:
            await self._session.execute(
                update(c).where(
                    c.c.assistant_id == bindparam("b_assistant_id"),
                    c.c.conversation_id == bindparam("b_conversation_id"),
                ),
                changed,
            )
        if new:
            await self._session.execute(insert(c), new)
        await self._append(conversations)

    async def _append(self, conversations: Sequence[Conversation]) -> None:
        rows = [
            {
                "assistant_id": conversation.assistant_id,
                "conversation_id": conversation.conversation_id,
                "role": message.role.value,
                "text": message.text,
                "sent_at": message.sent_at,
            }
            for conversation in conversations
            for message in conversation.unsaved_messages
        ]
        if rows:
            await self._session.execute(insert(tables.conversation_messages), rows)
        for conversation in conversations:
            conversation.unsaved_messages.clear()
