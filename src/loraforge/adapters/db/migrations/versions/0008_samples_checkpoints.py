"""Samples and checkpoints of a training while it trains (issue 13 §2): which image a training
rendered at which step with which prompt and seed (``training_samples``), the LoRAs kept at
those steps (``training_checkpoints``) and the sample sheet made at the end
(``training_sample_sheets``). Trainings from before this revision have none of them.

Revision ID: 0008_samples_checkpoints
Revises: 0006
Create Date: 2026-12-20 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_samples_checkpoints"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_samples",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("training_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_training_samples_image_id_images")
        ),
        sa.ForeignKeyConstraint(
            ["training_id"],
            ["trainings.id"],
            name=op.f("fk_training_samples_training_id_trainings"),
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_training_samples")),
    )
    op.create_index(
        "ix_training_samples_training_step",
        "training_samples",
        ["training_id", "step", "position"],
        unique=False,
    )
    op.create_table(
        "training_checkpoints",
        sa.Column("training_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("blob_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["training_id"],
            ["trainings.id"],
            name=op.f("fk_training_checkpoints_training_id_trainings"),
        ),
        sa.PrimaryKeyConstraint("training_id", "step", name=op.f("pk_training_checkpoints")),
    )
    op.create_index(
        op.f("ix_training_checkpoints_blob_key"), "training_checkpoints", ["blob_key"], unique=False
    )
    op.create_table(
        "training_sample_sheets",
        sa.Column("training_id", sa.String(length=36), nullable=False),
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_training_sample_sheets_image_id_images")
        ),
        sa.ForeignKeyConstraint(
            ["training_id"],
            ["trainings.id"],
            name=op.f("fk_training_sample_sheets_training_id_trainings"),
        ),
        sa.PrimaryKeyConstraint("training_id", name=op.f("pk_training_sample_sheets")),
    )


def downgrade() -> None:
    op.drop_table("training_sample_sheets")
    op.drop_index(op.f("ix_training_checkpoints_blob_key"), table_name="training_checkpoints")
    op.drop_table("training_checkpoints")
    op.drop_index("ix_training_samples_training_step", table_name="training_samples")
    op.drop_table("training_samples")
