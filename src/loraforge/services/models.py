"""Custom models: create, read, list, rename, soft-delete."""

from __future__ import annotations

from loraforge.domain.entities import Model, Page, Principal
from loraforge.domain.errors import InvalidInput, NotFound
from loraforge.ports import Clock, IdFactory, UnitOfWorkFactory
from loraforge.services.paging import PageRequest

MAX_NAME = 200
DEFAULT_BASE_MODEL = "tiny"


def _clean_name(value: str, field: str) -> str:
    name = value.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"{field} must be 1 to {MAX_NAME} printable characters.", field=field)
    return name


class ModelService:
    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock, new_id: IdFactory) -> None:
        self._uow = uow
        self._clock = clock
        self._new_id = new_id

    def create(
        self, who: Principal, *, display_name: str, custom_model_type: str | None = None
    ) -> Model:
        now = self._clock.now()
        model = Model(
            id=self._new_id(),
            account_id=who.account_id,
            display_name=_clean_name(display_name, "displayName"),
            custom_model_type=custom_model_type,
            base_model=DEFAULT_BASE_MODEL,
            created_at=now,
            updated_at=now,
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
        """Soft delete: the model and its images disappear from every answer; rows stay."""
        with self._uow(write=True) as uow:
            model = uow.models.get(who.account_id, model_id, lock=True)
            if model is None:
                raise NotFound(f"No model {model_id}.")
            model.deleted_at = model.updated_at = self._clock.now()
            uow.models.update(model)
            uow.commit()
