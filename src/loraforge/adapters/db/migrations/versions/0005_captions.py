"""Captions: who wrote each image's caption, caption runs, trigger words up to 32 characters.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "caption_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("model_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("overwrite", sa.Boolean(), nullable=False),
        sa.Column("image_ids", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("captioned", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_caption_runs_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_caption_runs_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caption_runs")),
    )
    op.create_index(
        "ix_caption_runs_model_created", "caption_runs", ["model_id", "created_at"], unique=False
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("caption_source", sa.String(length=8), nullable=False, server_default="none")
        )
    # Until now only Scenario's upload path wrote captions, from the captioning model.
    images = sa.table("images", sa.column("caption"), sa.column("caption_source"))
    op.execute(images.update().where(images.c.caption != "").values(caption_source="auto"))
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.alter_column(
            "trigger_word",
            existing_type=sa.String(length=16),
            type_=sa.String(length=32),
            existing_nullable=False,
        )


def downgrade() -> None:
    # Trigger words longer than the old column are cut to fit it.
    trainings = sa.table("trainings", sa.column("trigger_word"))
    op.execute(
        trainings.update()
        .where(sa.func.length(trainings.c.trigger_word) > 16)
        .values(trigger_word=sa.func.substr(trainings.c.trigger_word, 1, 16))
    )
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.alter_column(
            "trigger_word",
            existing_type=sa.String(length=32),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("caption_source")
    op.drop_index("ix_caption_runs_model_created", table_name="caption_runs")
    op.drop_table("caption_runs")
