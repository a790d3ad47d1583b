"""The dataset check's measures of each training image (``image_quality``), and an index that
finds an upload's exact duplicates among its model's images.

Images uploaded before this revision have no measures: the dataset report measures them when
it is asked for (services/dataset_check.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_quality",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("display_key", sa.String(length=64), nullable=False),
        sa.Column("phash", sa.String(length=16), nullable=False),
        sa.Column("sharpness", sa.Float(), nullable=False),
        sa.Column("luma", sa.Float(), nullable=False),
        sa.Column("dark_share", sa.Float(), nullable=False),
        sa.Column("bright_share", sa.Float(), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_quality_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_image_quality")),
    )
    op.create_index("ix_images_model_sha256", "images", ["model_id", "sha256"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_images_model_sha256", table_name="images")
    op.drop_table("image_quality")
