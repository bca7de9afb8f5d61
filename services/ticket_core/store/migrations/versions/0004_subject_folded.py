"""subject_folded: the subject case-folded by Python, for case-insensitive search

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("subject_folded", sa.String(length=400), server_default="", nullable=False)
        )
    # Rows written before this revision: the database's lower() is the best it can do here
    # (exact for ASCII); the next write of each ticket stores Python's casefold().
    op.execute("UPDATE tickets SET subject_folded = lower(subject)")


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("subject_folded")
