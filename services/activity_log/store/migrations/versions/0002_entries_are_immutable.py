"""activity entries are immutable: the database refuses UPDATE and DELETE on them

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSAL = "activity entries are immutable: add an entry, never change or remove one"


def upgrade() -> None:
    # No code path updates or deletes an entry; the triggers make sure no future one, and
    # no one with a SQL prompt, can either.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION activity_entries_refuse_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSAL} (% refused)', TG_OP;
            END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER activity_entries_immutable BEFORE UPDATE OR DELETE "
            "ON activity_entries FOR EACH ROW EXECUTE FUNCTION activity_entries_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER activity_entries_no_truncate BEFORE TRUNCATE ON activity_entries "
            "FOR EACH STATEMENT EXECUTE FUNCTION activity_entries_refuse_change()"
        )
        return
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER activity_entries_no_{operation.lower()} BEFORE {operation} "
            f"ON activity_entries BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER activity_entries_no_truncate ON activity_entries")
        op.execute("DROP TRIGGER activity_entries_immutable ON activity_entries")
        op.execute("DROP FUNCTION activity_entries_refuse_change()")
        return
    for operation in ("update", "delete"):
        op.execute(f"DROP TRIGGER activity_entries_no_{operation}")
