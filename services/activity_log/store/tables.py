"""activity-log's tables. Entries are only ever inserted (see the immutability migration)."""

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table, UniqueConstraint, Uuid

from shared.contracts.envelope import ACTOR_ID_MAX_LENGTH
from shared.db import UTCDateTime
from shared.inbox import define_inbox_table

metadata = MetaData()

activity_entries = Table(
    "activity_entries",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("workspace_id", Uuid, nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("type", String(100), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", String(ACTOR_ID_MAX_LENGTH), nullable=True),
    Column("time", UTCDateTime(), nullable=False),
    Column("changes", JSON, nullable=False),
    Column("data", JSON, nullable=False),
    UniqueConstraint("ticket_id", "sequence", name="uq_activity_ticket_sequence"),
    Index("ix_activity_workspace_ticket", "workspace_id", "ticket_id", "sequence"),
)

# Where each subject's history stands: the last sequence applied.
positions = Table(
    "subject_positions",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("workspace_id", Uuid, nullable=False),
    Column("last_sequence", Integer, nullable=False),
)

# Events that came after a gap, kept until the missing ones arrive; and events whose
# sequence was already taken (conflicts), kept for an operator to look at.
held_events = Table(
    "held_events",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("subject", String(64), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("reason", String(16), nullable=False),  # "gap" or "conflict"
    Column("payload", JSON, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_held_events_subject_sequence", "subject", "sequence"),
)

inbox = define_inbox_table(metadata)
# The pruner finds the ids older than the de-duplication horizon by this (migration 0005).
Index("ix_inbox_processed_at", inbox.c.processed_at)
