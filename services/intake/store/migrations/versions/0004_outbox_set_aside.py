"""outbox rows the broker refuses for good are set aside

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

`failed_at` and `failure_reason` on the outbox: a row the broker will never take (too large,
an invalid topic) is marked with why, and the relay's pending scan skips it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failure_reason", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("failure_reason")
        batch_op.drop_column("failed_at")
