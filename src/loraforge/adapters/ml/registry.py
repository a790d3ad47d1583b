"""Base models: the built-in ``tiny`` plus operator-configured SD 1.5 / SDXL models.

The config file (``LORAFORGE_BASE_MODELS_CONFIG``) is JSON: a list of objects
``{"name", "family": "sd15"|"sdxl", "resolution", "path", "description"?}`` where ``path`` is a
local diffusers folder or a single-file ``.safetensors`` checkpoint. Importing this module does
not import torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from loraforge.domain.ml import BaseModel, ModelFamily

TINY = BaseModel(
    name="tiny",
    family=ModelFamily.SD15,
    resolution=256,
    path=None,
    description="Built-in tiny SD-style model (trained by loraforge on procedural images).",
)


class BaseModelRegistry:
    def __init__(self, *, config: Path | None = None, default: str | None = None) -> None:
        self._models: dict[str, BaseModel] = {TINY.name: TINY}
        configured = _load(config) if config else []
        for model in configured:
            self._models[model.name] = model
        self._default = default or (configured[0].name if configured else TINY.name)
        if self._default not in self._models:
            raise ValueError(f"default base model {self._default!r} is not configured")

    @property
    def default(self) -> str:
        return self._default

    def list(self) -> list[BaseModel]:
        return list(self._models.values())

    def get(self, name: str) -> BaseModel:
        return self._models[name]


def _load(path: Path) -> list[BaseModel]:
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of base models")
    models = []
    for entry in entries:
        model_path = Path(entry["path"]).expanduser()
        if not model_path.is_absolute():
            model_path = (path.parent / model_path).resolve()
        models.append(
            BaseModel(
                name=str(entry["name"]),
                family=ModelFamily(entry["family"]),
                resolution=int(entry["resolution"]),
                path=model_path,
                description=str(entry.get("description", "")),
            )
        )
    return models
