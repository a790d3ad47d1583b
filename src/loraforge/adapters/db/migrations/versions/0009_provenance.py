"""Provenance (issue 13 §5): the server's receipt-signing key (``signing_keys``), the frozen
receipts of succeeded trainings (``training_receipts``), and ``trainings.erased_at`` (an image
the training used was erased).

Trainings that succeeded before this revision have no receipt: their weights are served as
they always were, without ``loraforge.receipt_sha256``.

Revision ID: 0009_provenance
Revises: 0008_samples_checkpoints
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_provenance"
down_revision = "0008_samples_checkpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("slot", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_signing_keys_key_id")),
    )
    op.create_table(
        "training_receipts",
        sa.Column("training_id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["training_id"],
            ["trainings.id"],
            name=op.f("fk_training_receipts_training_id_trainings"),
        ),
        sa.PrimaryKeyConstraint("training_id", name=op.f("pk_training_receipts")),
    )
    with op.batch_alter_table("trainings") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trainings") as batch:
        batch.drop_column("erased_at")
    op.drop_table("training_receipts")
    op.drop_table("signing_keys")
