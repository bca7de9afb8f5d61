"""ticket-core's tables. The domain never sees these: repositories translate both ways."""

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    column,
    table,
)

from shared.contracts.api import IDEMPOTENCY_KEY_MAX_LENGTH
from shared.contracts.conversation_ids import CONVERSATION_ID_MAX_LENGTH
from shared.contracts.tickets import SUBJECT_MAX_LENGTH
from shared.db import UTCDateTime
from shared.inbox import define_inbox_table
from shared.outbox import define_outbox_table

metadata = MetaData()

# Unicode full case folding maps one character to at most three.
SUBJECT_FOLDED_MAX_LENGTH = 3 * SUBJECT_MAX_LENGTH

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(120), nullable=False),
    # The next ticket number is taken with an UPDATE on this row, which serialises concurrent
    # creates in one workspace: numbers never repeat and never skip.
    Column("last_ticket_number", Integer, nullable=False, default=0),
    Column("auto_close_after_days", Integer, nullable=False, server_default="7"),
    Column("last_sequence", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("workspace_id", Uuid, ForeignKey("workspaces.id"), nullable=False),
    Column("email", String(254), nullable=False),
    Column("role", String(20), nullable=False),
    Column("last_sequence", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("workspace_id", "email", name="uq_members_workspace_email"),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("workspace_id", Uuid, ForeignKey("workspaces.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("subject", String(SUBJECT_MAX_LENGTH), nullable=False),
    # The subject case-folded in Python, so search ignores case for every alphabet, whatever
    # the database's own lower() and locale do. Folding makes up to three characters of one
    # ('ﬃ' -> 'ffi'), hence three times the subject's limit (migration 0006).
    Column(
        "subject_folded",
        String(SUBJECT_FOLDED_MAX_LENGTH),
        nullable=False,
        server_default="",
    ),
    Column("description", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("priority", String(16), nullable=False),
    # 0 = critical ... 3 = low: sorting by it puts the most urgent first, from an index.
    Column("priority_rank", Integer, nullable=False, server_default="2"),
    Column("assignee_id", Uuid, nullable=True),
    Column("conversation_ids", JSON, nullable=False, default=list),
    Column("version", Integer, nullable=False),
    Column("last_sequence", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=True),
    UniqueConstraint("workspace_id", "number", name="uq_tickets_workspace_number"),
    # One index per sort order of the list, each led by the status (see ticket_list.py).
    Index("ix_tickets_list_updated", "workspace_id", "status", "updated_at", "id"),
    Index("ix_tickets_list_created", "workspace_id", "status", "created_at", "id"),
    Index("ix_tickets_list_assignee", "workspace_id", "assignee_id", "status", "updated_at", "id"),
    Index("ix_tickets_status_updated", "status", "updated_at"),  # the auto-close sweep
    # The subject search index is per database, made by migration 0005: a pg_trgm GIN index
    # on PostgreSQL, and on SQLite the FTS5 table below.
)

Index(
    "ix_tickets_list_priority",
    tickets.c.workspace_id,
    tickets.c.status,
    tickets.c.priority_rank,
    tickets.c.updated_at.desc(),
    tickets.c.id.desc(),
)

# SQLite only: an FTS5 trigram index of `tickets.subject_folded` (external content, rowids
# are the tickets' own), kept in step by triggers. Declared here only to be queried.
ticket_subject_search = table("ticket_subject_search", column("rowid"))

# How many live tickets each (status, priority, assignee) has in a workspace: the list's
# counts per status without reading the tickets. Written with each ticket write.
ticket_counts = Table(
    "ticket_counts",
    metadata,
    Column("workspace_id", Uuid, primary_key=True),
    Column("status", String(32), primary_key=True),
    Column("priority", String(16), primary_key=True),
    Column("assignee_key", Uuid, primary_key=True),  # the nil UUID for "unassigned"
    Column("tickets", Integer, nullable=False),
)

# A conversation is linked to at most one ticket per workspace: the primary key enforces it
# even when two links race.
ticket_conversations = Table(
    "ticket_conversations",
    metadata,
    Column("workspace_id", Uuid, primary_key=True),
    Column("conversation_id", String(CONVERSATION_ID_MAX_LENGTH), primary_key=True),
    Column("ticket_id", Uuid, ForeignKey("tickets.id"), nullable=False, index=True),
)

# A dashboard create retried with the same Idempotency-Key returns the first answer.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("workspace_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("key", String(IDEMPOTENCY_KEY_MAX_LENGTH), primary_key=True),
    Column("request_fingerprint", String(64), nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

outbox = define_outbox_table(metadata)
inbox = define_inbox_table(metadata)
