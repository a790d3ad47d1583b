"""Looking up the base model a stored model names."""

from __future__ import annotations

from loraforge.domain.errors import InvalidInput
from loraforge.domain.ml import BaseModel
from loraforge.ports import BaseModelCatalog


def base_model_named(catalog: BaseModelCatalog, name: str) -> BaseModel:
    """The configured base model ``name``; a 422 naming ``baseModel`` when the operator has
    since removed it from the registry."""
    try:
        return catalog.get(name)
    except KeyError as exc:
        raise InvalidInput(f"Unknown base model {name}.", field="baseModel") from exc
