"""widget security: widget keys, allowed origins, identity verification, counted refusals

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Assistants saved before get a widget key each (their widgets must then send it). Refused
requests stored one row each (`ticket_requests` with status `rejected` and no command) are
not kept any more: the newest 100 per assistant move to `refusal_samples`.
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("widget_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("previous_widget_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("allowed_origins", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "identity_verification", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(sa.Column("identity_secret", sa.String(length=100), nullable=True))
    connection = op.get_bind()
    assistants = sa.table(
        "assistants",
        sa.column("assistant_id", sa.String),
        sa.column("widget_key", sa.String),
        sa.column("allowed_origins", sa.JSON),
    )
    for (assistant_id,) in connection.execute(sa.select(assistants.c.assistant_id)).all():
        connection.execute(
            assistants.update()
            .where(assistants.c.assistant_id == assistant_id)
            .values(widget_key="wk_" + secrets.token_urlsafe(24), allowed_origins=[])
        )
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.alter_column("widget_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("allowed_origins", existing_type=sa.JSON(), nullable=False)
        batch_op.create_unique_constraint("uq_assistants_widget_key", ["widget_key"])
        batch_op.create_unique_constraint(
            "uq_assistants_previous_widget_key", ["previous_widget_key"]
        )

    op.create_table(
        "assistant_origins",
        sa.Column("assistant_id", sa.String(length=100), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("assistant_id", "origin"),
    )
    op.create_index("ix_assistant_origins_origin", "assistant_origins", ["origin"])

    op.create_table(
        "refusal_counts",
        sa.Column("assistant_id", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("assistant_id", "reason", "minute"),
    )
    op.create_index("ix_refusal_counts_minute", "refusal_counts", ["minute"])

    op.create_table(
        "refusal_samples",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("assistant_id", sa.String(length=100), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("conversation_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.String(length=400), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_refusal_samples_assistant", "refusal_samples", ["assistant_id", "id"])
    op.create_index("ix_refusal_samples_request", "refusal_samples", ["request_id"])

    # Refusals stored as requests: the newest 100 of each configured assistant become samples.
    requests = sa.table(
        "ticket_requests",
        sa.column("request_id", sa.String),
        sa.column("assistant_id", sa.String),
        sa.column("workspace_id", sa.Uuid),
        sa.column("conversation_id", sa.String),
        sa.column("status", sa.String),
        sa.column("reason", sa.String),
        sa.column("detail", sa.Text),
        sa.column("command_id", sa.Uuid),
        sa.column("received_at", sa.DateTime(timezone=True)),
    )
    refused_at_once = sa.and_(requests.c.status == "rejected", requests.c.command_id.is_(None))
    samples = sa.table(
        "refusal_samples",
        sa.column("assistant_id", sa.String),
        sa.column("request_id", sa.String),
        sa.column("conversation_id", sa.String),
        sa.column("reason", sa.String),
        sa.column("detail", sa.String),
        sa.column("received_at", sa.DateTime(timezone=True)),
    )
    for (assistant_id,) in connection.execute(
        sa.select(requests.c.assistant_id)
        .where(refused_at_once, requests.c.workspace_id.is_not(None))
        .distinct()
    ).all():
        rows = connection.execute(
            sa.select(requests)
            .where(refused_at_once, requests.c.assistant_id == assistant_id)
            .order_by(requests.c.received_at.desc())
            .limit(100)
        ).mappings()
        for row in reversed(list(rows)):
            connection.execute(
                samples.insert().values(
                    assistant_id=assistant_id,
                    request_id=row["request_id"],
                    conversation_id=(row["conversation_id"] or "")[:128] or None,
                    reason=row["reason"] or "invalid_request",
                    detail=(row["detail"] or "")[:300],
                    received_at=row["received_at"],
                )
            )
    connection.execute(requests.delete().where(refused_at_once))


def downgrade() -> None:
    op.drop_index("ix_refusal_samples_request", table_name="refusal_samples")
    op.drop_index("ix_refusal_samples_assistant", table_name="refusal_samples")
    op.drop_table("refusal_samples")
    op.drop_index("ix_refusal_counts_minute", table_name="refusal_counts")
    op.drop_table("refusal_counts")
    op.drop_index("ix_assistant_origins_origin", table_name="assistant_origins")
    op.drop_table("assistant_origins")
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.drop_constraint("uq_assistants_previous_widget_key", type_="unique")
        batch_op.drop_constraint("uq_assistants_widget_key", type_="unique")
        batch_op.drop_column("identity_secret")
        batch_op.drop_column("identity_verification")
        batch_op.drop_column("allowed_origins")
        batch_op.drop_column("previous_widget_key")
        batch_op.drop_column("widget_key")
