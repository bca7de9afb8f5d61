"""inbox: an index on processed_at, for pruning

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

The inbox is pruned hourly of the ids older than the de-duplication horizon
(`shared/inbox.py`); activity-log's inbox holds one id per ticket event, so the pruner's
look-up of the oldest ids is an index range scan instead of a scan of the whole table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_processed_at", table_name="inbox")
