"""The blobs of each prediction's input pictures (``init_image``, ``mask_image``): referenced
while the prediction exists, so the blob sweep and image deletes leave them alone.

The new prediction inputs themselves (negative prompt, scheduler, strength, the input
pictures' sources) live in the predictions' ``params`` JSON, which needs no change.

Revision ID: 0010_prediction_inputs
Revises: 0009_provenance
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_prediction_inputs"
down_revision = "0009_provenance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_blobs",
        sa.Column("prediction_id", sa.String(length=36), nullable=False),
        sa.Column("blob_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_prediction_blobs_prediction_id_predictions"),
        ),
        sa.PrimaryKeyConstraint("prediction_id", "blob_key", name=op.f("pk_prediction_blobs")),
    )
    op.create_index(
        op.f("ix_prediction_blobs_blob_key"), "prediction_blobs", ["blob_key"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_prediction_blobs_blob_key"), table_name="prediction_blobs")
    op.drop_table("prediction_blobs")
