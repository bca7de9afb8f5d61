"""list at scale: sort indexes, a subject search index, counts per status

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

- `priority_rank` and one index per sort order, each led by (workspace, status), and one for
  "assigned to" (`me`, a member);
- the subject search index: pg_trgm GIN on PostgreSQL, an FTS5 trigram table on SQLite;
- `ticket_counts`, the rollup of live tickets per (status, priority, assignee), filled from
  the tickets already there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_ASSIGNEE = "00000000-0000-0000-0000-000000000000"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("priority_rank", sa.Integer(), server_default="2", nullable=False)
        )
        batch_op.drop_index("ix_tickets_workspace_updated")
    op.execute(
        "UPDATE tickets SET priority_rank = CASE priority "
        "WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END"
    )
    op.create_index(
        "ix_tickets_list_updated", "tickets", ["workspace_id", "status", "updated_at", "id"]
    )
    op.create_index(
        "ix_tickets_list_created", "tickets", ["workspace_id", "status", "created_at", "id"]
    )
    op.create_index(
        "ix_tickets_list_assignee",
        "tickets",
        ["workspace_id", "assignee_id", "status", "updated_at", "id"],
    )
    op.create_index(
        "ix_tickets_list_priority",
        "tickets",
        [
            "workspace_id",
            "status",
            "priority_rank",
            sa.text("updated_at DESC"),
            sa.text("id DESC"),
        ],
    )

    op.create_table(
        "ticket_counts",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("assignee_key", sa.Uuid(), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "status", "priority", "assignee_key"),
    )
    if dialect == "postgresql":
        unassigned = f"'{NO_ASSIGNEE}'::uuid"
    else:  # SQLAlchemy stores a Uuid on SQLite as 32 hex digits
        unassigned = f"'{NO_ASSIGNEE.replace('-', '')}'"
    op.execute(
        "INSERT INTO ticket_counts (workspace_id, status, priority, assignee_key, tickets) "
        f"SELECT workspace_id, status, priority, COALESCE(assignee_id, {unassigned}), count(*) "
        "FROM tickets WHERE deleted_at IS NULL "
        f"GROUP BY workspace_id, status, priority, COALESCE(assignee_id, {unassigned})"
    )

    if dialect == "postgresql":
        # Needs the pg_trgm extension (shipped with PostgreSQL; creating it needs the
        # CREATE privilege on the database, which the service's owner role has).
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_tickets_subject_trigrams ON tickets "
            "USING gin (subject_folded gin_trgm_ops)"
        )
    elif dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE ticket_subject_search USING fts5("
            "subject_folded, content='tickets', content_rowid='rowid', tokenize='trigram')"
        )
        # A later migration that rebuilds `tickets` (batch mode) drops these triggers and may
        # renumber rows: it must recreate them and run the 'rebuild' below again.
        op.execute(
            "CREATE TRIGGER tickets_search_insert AFTER INSERT ON tickets BEGIN "
            "INSERT INTO ticket_subject_search (rowid, subject_folded) "
            "VALUES (new.rowid, new.subject_folded); END"
        )
        op.execute(
            "CREATE TRIGGER tickets_search_delete AFTER DELETE ON tickets BEGIN "
            "INSERT INTO ticket_subject_search (ticket_subject_search, rowid, subject_folded) "
            "VALUES ('delete', old.rowid, old.subject_folded); END"
        )
        op.execute(
            "CREATE TRIGGER tickets_search_update AFTER UPDATE OF subject_folded ON tickets "
            "WHEN old.subject_folded IS NOT new.subject_folded BEGIN "
            "INSERT INTO ticket_subject_search (ticket_subject_search, rowid, subject_folded) "
            "VALUES ('delete', old.rowid, old.subject_folded); "
            "INSERT INTO ticket_subject_search (rowid, subject_folded) "
            "VALUES (new.rowid, new.subject_folded); END"
        )
        op.execute("INSERT INTO ticket_subject_search (ticket_subject_search) VALUES ('rebuild')")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX ix_tickets_subject_trigrams")
    elif dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER tickets_search_{trigger}")
        op.execute("DROP TABLE ticket_subject_search")
    op.drop_table("ticket_counts")
    op.drop_index("ix_tickets_list_priority", table_name="tickets")
    op.drop_index("ix_tickets_list_assignee", table_name="tickets")
    op.drop_index("ix_tickets_list_created", table_name="tickets")
    op.drop_index("ix_tickets_list_updated", table_name="tickets")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_workspace_updated", ["workspace_id", "updated_at"])
        batch_op.drop_column("priority_rank")
