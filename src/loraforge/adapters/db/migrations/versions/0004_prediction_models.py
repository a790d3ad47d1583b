"""Link each prediction to the models it mixed besides its first, so its outputs (owned by
the first) are listed under those too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    links = op.create_table(
        "prediction_models",
        sa.Column("prediction_id", sa.String(length=36), nullable=False),
        sa.Column("model_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_prediction_models_model_id_models")
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_prediction_models_prediction_id_predictions"),
        ),
        sa.PrimaryKeyConstraint("prediction_id", "model_id", name=op.f("pk_prediction_models")),
    )
    op.create_index(
        op.f("ix_prediction_models_model_id"), "prediction_models", ["model_id"], unique=False
    )
    # Backfill from the scale configs each existing prediction froze in its params.
    predictions = sa.table("predictions", sa.column("id"), sa.column("params", sa.JSON()))
    rows = op.get_bind().execute(sa.select(predictions.c.id, predictions.c.params))
    backfill = [
        {"prediction_id": prediction_id, "model_id": model_id}
        for prediction_id, params in rows
        for model_id in _mixed(params["scale_configs"])
    ]
    if backfill:
        op.bulk_insert(links, backfill)


def _mixed(scale_configs: list[dict[str, object]]) -> list[object]:
    # As Prediction.mixed_model_ids at this revision: distinct models after the first's.
    models = dict.fromkeys(c["model_id"] for c in scale_configs)
    models.pop(scale_configs[0]["model_id"])
    return list(models)


def downgrade() -> None:
    op.drop_index(op.f("ix_prediction_models_model_id"), table_name="prediction_models")
    op.drop_table("prediction_models")
