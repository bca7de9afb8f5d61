"""ticket lifecycle, links, idempotency

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
        "idempotency_keys",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "member_id", "key"),
    )
    op.create_table(
        "ticket_conversations",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("workspace_id", "conversation_id"),
    )
    with op.batch_alter_table("ticket_conversations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_conversations_ticket_id"), ["ticket_id"], unique=False
        )

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_sequence", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("last_sequence")

    with op.batch_alter_table("ticket_conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_conversations_ticket_id"))

    op.drop_table("ticket_conversations")
    op.drop_table("idempotency_keys")
