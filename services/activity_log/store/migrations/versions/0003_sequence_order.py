"""sequence order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "held_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("held_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_held_events_subject_sequence", ["subject", "sequence"], unique=False
        )

    op.create_table(
        "subject_positions",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
    )
    # Histories stored before this revision were applied as they came: they stand at their
    # highest sequence.
    op.execute(
        "INSERT INTO subject_positions (subject, workspace_id, last_sequence) "
        "SELECT ticket_id, workspace_id, MAX(sequence) FROM activity_entries "
        "GROUP BY ticket_id, workspace_id"
    )


def downgrade() -> None:

    op.drop_table("subject_positions")
    with op.batch_alter_table("held_events", schema=None) as batch_op:
        batch_op.drop_index("ix_held_events_subject_sequence")

    op.drop_table("held_events")
