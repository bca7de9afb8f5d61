"""subject_folded: room for what case folding makes of a 200-character subject

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Full case folding turns one character into up to three ('ﬃ' -> 'ffi'), so a valid subject of
200 characters can fold to 600: `String(400)` refused such a subject on PostgreSQL. SQLite does
not enforce a VARCHAR length, and rebuilding its `tickets` table would drop the search
triggers of 0005, so only PostgreSQL's column changes (varchar to varchar: no table rewrite;
the trigram index is rebuilt).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "tickets",
            "subject_folded",
            type_=sa.String(length=600),
            existing_type=sa.String(length=400),
            existing_nullable=False,
            existing_server_default="",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Fails if a stored subject folds to more than 400 characters: such a ticket's
        # subject must be shortened before going back.
        op.alter_column(
            "tickets",
            "subject_folded",
            type_=sa.String(length=400),
            existing_type=sa.String(length=600),
            existing_nullable=False,
            existing_server_default="",
        )
