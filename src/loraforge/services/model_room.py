"""Whether a model has room for more images of a kind (the per-model, per-type limit)."""

from __future__ import annotations

import sys

from loraforge.domain.entities import ImageKind, Principal
from loraforge.domain.errors import LimitReached, NotFound
from loraforge.ports import UnitOfWork

# Kinds a model holds a limited number of (seed 000: 20 of each); outputs are not limited.
LIMITED_KINDS = frozenset({ImageKind.TRAINING, ImageKind.REFERENCE})


def room_left(
    uow: UnitOfWork, who: Principal, model_id: str, kind: ImageKind, *, limit: int, lock: bool
) -> int:
    """How many more images of ``kind`` the model takes; ``NotFound`` without the model.
    ``lock``: hold the model row until the commit, so that two writers cannot both take its
    last places."""
    if uow.models.get(who.account_id, model_id, lock=lock) is None:
        raise NotFound(f"No model {model_id}.")
    if kind not in LIMITED_KINDS:
        return sys.maxsize
    return max(0, limit - uow.images.count_for_model(model_id, kind))


def ensure_room(
    uow: UnitOfWork, who: Principal, model_id: str, kind: ImageKind, *, limit: int, lock: bool
) -> None:
    """``NotFound`` without the model, ``LimitReached`` when it is full (see ``room_left``)."""
    if room_left(uow, who, model_id, kind, limit=limit, lock=lock) <= 0:
        raise full(limit)


def full(limit: int) -> LimitReached:
    return LimitReached(f"The model already has {limit} images of this type.")
