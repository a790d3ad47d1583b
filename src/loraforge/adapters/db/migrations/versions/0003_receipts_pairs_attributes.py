"""Task receipts (idempotent client task ids), training pairs, model attributes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:41:57.466140
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_receipts",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_task_receipts_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "scope", "task_id", name=op.f("pk_task_receipts")),
    )
    op.create_table(
        "training_pairs",
        sa.Column("model_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source_image_id", sa.String(length=36), nullable=False),
        sa.Column("target_image_id", sa.String(length=36), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_training_pairs_model_id_models")
        ),
        sa.PrimaryKeyConstraint("model_id", "position", name=op.f("pk_training_pairs")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}"))

    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin", sa.String(length=16), nullable=False, server_default="native")
        )
        batch_op.create_index("ix_images_origin_last_used", ["origin", "last_used_at"])
        batch_op.create_index("ix_images_model_created", ["model_id", "created_at", "id"])


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index("ix_images_model_created")
        batch_op.drop_index("ix_images_origin_last_used")
        batch_op.drop_column("origin")

    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("attributes")

    op.drop_table("training_pairs")
    op.drop_table("task_receipts")
