"""Custom models: create, read, list, rename, update, soft-delete; and their state at a glance."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loraforge.domain.entities import Image, ImageKind, Model, Page, Principal, TrainingPair
from loraforge.domain.errors import InvalidInput, NotFound
from loraforge.domain.work import RunStatus, Training
from loraforge.ports import (
    BaseModelCatalog,
    BlobStore,
    Clock,
    IdFactory,
    UnitOfWork,
    UnitOfWorkFactory,
)
from loraforge.services.blob_refs import BlobReferences
from loraforge.services.paging import PageRequest
from loraforge.services.training_samples import purge

MAX_NAME = 200


def _clean_name(value: str, field: str) -> str:
    name = value.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"{field} must be 1 to {MAX_NAME} printable characters.", field=field)
    return name


@dataclass(frozen=True)
class ModelState:
    """A model with what it holds and how its latest training goes, read in one transaction.

    ``training_images`` and ``pairs`` are only loaded when asked for (``detail=True``); pairs
    whose images were deleted since are left out.
    """

    model: Model
    training_image_count: int
    latest_training: Training | None
    training_images: list[Image] | None = None
    pairs: list[TrainingPair] | None = None


def merge_attributes(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """One level deep: a dict value merges into the stored dict under its key (a dialect's
    namespace); any other value replaces. Always a new dict, so the change is persisted."""
    merged = dict(stored)
    for key, value in changes.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = {**current, **value}
        else:
            merged[key] = value
    return merged


class ModelStatus(enum.StrEnum):
    """Where a model stands, derived from its trainings (PhotoGPT's model statuses)."""

    NEW = "new"  # no training succeeded, none is running
    TRAINING = "training"  # a training is queued or running
    READY = "ready"  # a training succeeded: its LoRA can be used
    DELETED = "deleted"


def model_status(model: Model, trainings: Sequence[Training]) -> ModelStatus:
    """A running training wins: a model being retrained is not ready until that one is."""
    if model.deleted_at is not None:
        return ModelStatus.DELETED
    statuses = {t.status for t in trainings if t.deleted_at is None}
    if statuses & {RunStatus.QUEUED, RunStatus.PROCESSING}:
        return ModelStatus.TRAINING
    if RunStatus.SUCCEEDED in statuses:
        return ModelStatus.READY
    return ModelStatus.NEW


class ModelService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        new_id: IdFactory,
        catalog: BaseModelCatalog,
        blobs: BlobStore | None = None,
    ) -> None:
        self._uow = uow
        # Releases the blobs of deleted trainings' samples and checkpoints at once; without
        # it the periodic sweep removes them later.
        self._refs = BlobReferences(uow=uow, blobs=blobs) if blobs is not None else None
        self._clock = clock
        self._new_id = new_id
        self._catalog = catalog

    def create(
        self,
        who: Principal,
        *,
        display_name: str,
        custom_model_type: str | None = None,
        base_model: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Model:
        now = self._clock.now()
        base = self._check_base(base_model or self._catalog.default)
        model = Model(
            id=self._new_id(),
            account_id=who.account_id,
            display_name=_clean_name(display_name, "displayName"),
            custom_model_type=custom_model_type,
            base_model=base,
            created_at=now,
            updated_at=now,
            attributes=dict(attributes or {}),
        )
        with self._uow(write=True) as uow:
            uow.models.add(model)
            uow.commit()
        return model

    def get(self, who: Principal, model_id: str) -> Model:
        with self._uow() as uow:
            model = uow.models.get(who.account_id, model_id)
        if model is None:
            raise NotFound(f"No model {model_id}.")
        return model

    def list(self, who: Principal, page: PageRequest) -> Page[Model]:
        with self._uow() as uow:
            items, total = uow.models.list(who.account_id, offset=page.offset, limit=page.page_size)
        return Page(items=items, total=total, page_num=page.page_num, page_size=page.page_size)

    def rename(self, who: Principal, model_id: str, *, display_name: str) -> Model:
        name = _clean_name(display_name, "updatedDisplayName")
        with self._uow(write=True) as uow:
            model = uow.models.get(who.account_id, model_id, lock=True)
            if model is None:
                raise NotFound(f"No model {model_id}.")
            model.display_name = name
            model.updated_at = self._clock.now()
            uow.models.update(model)
            uow.commit()
        return model

    def delete(self, who: Principal, model_id: str) -> None:
        """Soft delete: the model and its images disappear from every answer; rows stay, but
        its trainings' samples, sample sheets and checkpoints go, with their bytes unless
        shared."""
        with self._uow(write=True) as uow:
            model = uow.models.get(who.account_id, model_id, lock=True)
            if model is None:
                raise NotFound(f"No model {model_id}.")
            keys = purge(uow, [t.id for t in uow.trainings.list_for_model(model_id)])
            model.deleted_at = model.updated_at = self._clock.now()
            uow.models.update(model)
            uow.commit()
        if self._refs is not None:
            self._refs.release(keys)

    def update(
        self,
        who: Principal,
        model_id: str,
        *,
        display_name: str | None = None,
        custom_model_type: str | None = None,
        base_model: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Model:
        """Change what is given, leave the rest; ``attributes`` merge (``merge_attributes``).
        Trainings already started keep the base model their manifest froze."""
        name = None if display_name is None else _clean_name(display_name, "name")
        base = None if base_model is None else self._check_base(base_model)
        with self._uow(write=True) as uow:
            model = uow.models.get(who.account_id, model_id, lock=True)
            if model is None:
                raise NotFound(f"No model {model_id}.")
            model.display_name = name if name is not None else model.display_name
            if custom_model_type is not None:
                model.custom_model_type = custom_model_type
            model.base_model = base or model.base_model
            if attributes:
                model.attributes = merge_attributes(model.attributes, attributes)
            model.updated_at = self._clock.now()
            uow.models.update(model)
            uow.commit()
        return model

    def describe(self, who: Principal, model_id: str, *, detail: bool = False) -> ModelState:
        with self._uow() as uow:
            model = uow.models.get(who.account_id, model_id)
            if model is None:
                raise NotFound(f"No model {model_id}.")
            return _state(uow, model, detail=detail)

    def describe_range(
        self, who: Principal, *, offset: int, limit: int
    ) -> tuple[Sequence[ModelState], int]:
        """Like ``list`` from any offset (cursor paging), each model with its state, in one
        transaction; and the total count."""
        with self._uow() as uow:
            items, total = uow.models.list(who.account_id, offset=offset, limit=limit)
            return [_state(uow, model, detail=False) for model in items], total

    def statuses(self, who: Principal, model_ids: Iterable[str]) -> dict[str, ModelStatus]:
        """``model_status`` of each of the account's live models among ``model_ids``."""
        found: dict[str, ModelStatus] = {}
        with self._uow() as uow:
            for model_id in model_ids:
                model = uow.models.get(who.account_id, model_id)
                if model is not None:
                    found[model_id] = model_status(model, uow.trainings.list_for_model(model_id))
        return found

    def _check_base(self, name: str) -> str:
        try:
            self._catalog.get(name)
        except KeyError as exc:
            known = ", ".join(m.name for m in self._catalog.list())
            raise InvalidInput(
                f"Unknown base model {name!r}; available: {known}.", field="baseModel"
            ) from exc
        return name


def _state(uow: UnitOfWork, model: Model, *, detail: bool) -> ModelState:
    trainings = uow.trainings.list_for_model(model.id)
    latest = trainings[0] if trainings else None
    count = uow.images.count_for_model(model.id, ImageKind.TRAINING)
    if not detail:
        return ModelState(model=model, training_image_count=count, latest_training=latest)
    images, _ = uow.images.list_for_model(
        model.id, kinds=[ImageKind.TRAINING], offset=0, limit=max(count, 1)
    )
    ids = {image.id for image in images}
    pairs = [
        p for p in uow.pairs.list(model.id) if p.source_image_id in ids and p.target_image_id in ids
    ]
    return ModelState(
        model=model,
        training_image_count=count,
        latest_training=latest,
        training_images=list(reversed(images)),  # upload order
        pairs=pairs,
    )
