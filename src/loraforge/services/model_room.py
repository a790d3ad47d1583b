"""Whether a model has room for one more image of a kind (the per-model, per-type limit)."""

from __future__ import annotations

from loraforge.domain.entities import ImageKind, Principal
from loraforge.domain.errors import LimitReached, NotFound
from loraforge.ports import UnitOfWork

# Kinds a model holds a limited number of (seed 000: 20 of each); outputs are not limited.
LIMITED_KINDS = frozenset({ImageKind.TRAINING, ImageKind.REFERENCE})


def ensure_room(
    uow: UnitOfWork, who: Principal, model_id: str, kind: ImageKind, *, limit: int, lock: bool
) -> None:
    """``NotFound`` without the model, ``LimitReached`` when it is full. ``lock``: hold the
    model row until the commit, so two uploads cannot both take its last place."""
    if uow.models.get(who.account_id, model_id, lock=lock) is None:
        raise NotFound(f"No model {model_id}.")
    if kind in LIMITED_KINDS and uow.images.count_for_model(model_id, kind) >= limit:
        raise LimitReached(f"The model already has {limit} images of this type.")
