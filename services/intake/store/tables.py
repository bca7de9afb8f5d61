"""intake's tables: assistants' ticket settings (and their history), widget requests and
their outcome, conversation snapshots, plus the outbox and inbox every service has."""

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    false,
)

from shared.contracts.conversation_ids import CONVERSATION_ID_MAX_LENGTH
from shared.contracts.widget import ASSISTANT_ID_MAX_LENGTH
from shared.db import UTCDateTime, serial_id
from shared.inbox import define_inbox_table
from shared.outbox import define_outbox_table

metadata = MetaData()


def _assistant_id(**options: Any) -> Column[str]:
    """An assistant's id, as the widget and the dashboard name it."""
    return Column("assistant_id", String(ASSISTANT_ID_MAX_LENGTH), **options)


def _conversation_id(**options: Any) -> Column[str]:
    """A conversation's id, as the widget sent it (and its checks took it)."""
    return Column("conversation_id", String(CONVERSATION_ID_MAX_LENGTH), **options)


assistants = Table(
    "assistants",
    metadata,
    _assistant_id(primary_key=True),
    # The workspace that first saved the assistant's settings owns it.
    Column("workspace_id", Uuid, nullable=False, index=True),
    Column("ticket_creation_enabled", Boolean, nullable=False),
    Column("require_contact_info", Boolean, nullable=False),
    Column("last_sequence", Integer, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Publishable; the one replaced last is kept only to tell its caller it was replaced.
    Column("widget_key", String(64), nullable=False, unique=True),
    Column("previous_widget_key", String(64), nullable=True, unique=True),
    Column("allowed_origins", JSON, nullable=False, default=list),
    Column("identity_verification", Boolean, nullable=False, server_default=false()),
    # The HMAC key itself (verifying needs it); shown once, never in an answer again.
    Column("identity_secret", String(100), nullable=True),
)

# One row per (assistant, origin) of every list: a preflight, which carries no key, asks
# whether any assistant accepts its origin.
assistant_origins = Table(
    "assistant_origins",
    metadata,
    _assistant_id(primary_key=True),
    Column("origin", String(300), primary_key=True),
    Index("ix_assistant_origins_origin", "origin"),
)

# Refused widget calls, counted per assistant, reason and minute ("" = no configured
# assistant), pruned after INTAKE_REFUSAL_RETENTION_DAYS.
refusal_counts = Table(
    "refusal_counts",
    metadata,
    _assistant_id(primary_key=True),
    Column("reason", String(40), primary_key=True),
    Column("minute", UTCDateTime(), primary_key=True),
    Column("count", Integer, nullable=False),
    Index("ix_refusal_counts_minute", "minute"),
)

# The newest refusals of each configured assistant (at most INTAKE_REFUSAL_SAMPLE_SIZE).
refusal_samples = Table(
    "refusal_samples",
    metadata,
    serial_id("id"),
    _assistant_id(nullable=False),
    Column("request_id", String(100), nullable=True),
    _conversation_id(nullable=True),
    Column("reason", String(40), nullable=False),
    Column("detail", String(400), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_refusal_samples_assistant", "assistant_id", "id"),
    Index("ix_refusal_samples_request", "request_id"),
)

assistant_settings_changes = Table(
    "assistant_settings_changes",
    metadata,
    serial_id("id"),
    _assistant_id(nullable=False, index=True),
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("changed_by", String(100), nullable=False),
    Column("changes", JSON, nullable=False),
)

ticket_requests = Table(
    "ticket_requests",
    metadata,
    Column("request_id", String(100), primary_key=True),
    _assistant_id(nullable=False),
    Column("workspace_id", Uuid, nullable=True),  # None: the assistant is unknown
    Column("conversation_id", String(200), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("command_id", Uuid, nullable=True, unique=True),
    Column("status", String(16), nullable=False),
    Column("reason", String(40), nullable=True),
    Column("detail", Text, nullable=True),
    Column("ticket_id", Uuid, nullable=True),
    Column("ticket_number", Integer, nullable=True),
    Column("last_sequence", Integer, nullable=False, server_default="0"),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("decided_at", UTCDateTime(), nullable=True),
    Index("ix_ticket_requests_assistant_received", "assistant_id", "received_at"),
    Index("ix_ticket_requests_conversation_received", "conversation_id", "received_at"),
    Index("ix_ticket_requests_status_received", "status", "received_at"),
)

conversations = Table(
    "conversations",
    metadata,
    _assistant_id(primary_key=True),
    _conversation_id(primary_key=True),
    Column("workspace_id", Uuid, nullable=False, index=True),
    Column("ticket_id", Uuid, nullable=True),
    Column("last_sequence", Integer, nullable=False, server_default="0"),
)

conversation_messages = Table(
    "conversation_messages",
    metadata,
    serial_id("id"),
    _assistant_id(nullable=False),
    _conversation_id(nullable=False),
    Column("role", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
    Index("ix_conversation_messages_conversation", "assistant_id", "conversation_id", "sent_at"),
)

outbox = define_outbox_table(metadata)
inbox = define_inbox_table(metadata)
