"""Lifecycle events: the events a training's or prediction's webhook announces
(``webhook_events``; NULL: the default, one webhook when the run ends), and each delivery's run
and place in that run's order (``run_id``, ``sequence``; NULL for deliveries made before).

Revision ID: 0011_run_events
Revises: 0010_prediction_inputs
Create Date: 2026-12-20 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_run_events"
down_revision = "0010_prediction_inputs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in ("trainings", "predictions"):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("webhook_events", sa.JSON(), nullable=True))
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_webhook_deliveries_run_sequence", ["run_id", "sequence"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_run_sequence")
        batch_op.drop_column("sequence")
        batch_op.drop_column("run_id")
    for name in ("predictions", "trainings"):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column("webhook_events")
