"""assistants requests conversations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "assistant_settings_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("assistant_id", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assistant_settings_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assistant_settings_changes_assistant_id"), ["assistant_id"], unique=False
        )

    op.create_table(
        "assistants",
        sa.Column("assistant_id", sa.String(length=100), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_creation_enabled", sa.Boolean(), nullable=False),
        sa.Column("require_contact_info", sa.Boolean(), nullable=False),
        sa.Column("last_sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("assistant_id"),
    )
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assistants_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "conversation_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("assistant_id", sa.String(length=100), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversation_messages_conversation",
            ["assistant_id", "conversation_id", "sent_at"],
            unique=False,
        )

    op.create_table(
        "conversations",
        sa.Column("assistant_id", sa.String(length=100), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("last_sequence", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("assistant_id", "conversation_id"),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversations_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "ticket_requests",
        sa.Column("request_id", sa.String(length=100), nullable=False),
        sa.Column("assistant_id", sa.String(length=100), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.String(length=200), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("command_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("ticket_number", sa.Integer(), nullable=True),
        sa.Column("last_sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
        sa.UniqueConstraint("command_id"),
    )
    with op.batch_alter_table("ticket_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_requests_assistant_received", ["assistant_id", "received_at"], unique=False
        )
        batch_op.create_index(
            "ix_ticket_requests_conversation_received",
            ["conversation_id", "received_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_ticket_requests_status_received", ["status", "received_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("ticket_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_requests_status_received")
        batch_op.drop_index("ix_ticket_requests_conversation_received")
        batch_op.drop_index("ix_ticket_requests_assistant_received")

    op.drop_table("ticket_requests")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_workspace_id"))

    op.drop_table("conversations")
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_messages_conversation")

    op.drop_table("conversation_messages")
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assistants_workspace_id"))

    op.drop_table("assistants")
    with op.batch_alter_table("assistant_settings_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assistant_settings_changes_assistant_id"))

    op.drop_table("assistant_settings_changes")
