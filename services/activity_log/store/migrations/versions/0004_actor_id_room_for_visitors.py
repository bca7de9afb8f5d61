"""actor_id: room for a visitor's id

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

The envelope allows an actor id of up to 256 characters, and a visitor's id
(`<assistant>/<conversation>`) can be 229; `String(100)` made PostgreSQL refuse such an event
(a DataError, which the consumer dead-letters). SQLite does not enforce a VARCHAR length.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "activity_entries",
            "actor_id",
            type_=sa.String(length=256),
            existing_type=sa.String(length=100),
            existing_nullable=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "activity_entries",
            "actor_id",
            type_=sa.String(length=100),
            existing_type=sa.String(length=256),
            existing_nullable=True,
        )
