"""Which base models this server offers: the built-in ``tiny`` plus what the operator configures.

The operator's file is JSON — a list of models, or ``{"default": ..., "models": [...]}`` — or
TOML by its ``.toml`` suffix::

    default = "sd15"                        # optional: else the first model listed

    [[models]]
    name = "sd15"
    family = "sd15"                         # sd15 | sdxl | sd3 | flux
    resolution = 512                        # native side in pixels
    path = "/models/stable-diffusion-v1-5"  # a diffusers folder (model_index.json inside) …
    description = "Stable Diffusion 1.5"

    [[models]]
    name = "dreamshaper"
    family = "sd15"
    resolution = 512
    path = "/models/dreamshaper_8.safetensors"  # … or a single-file checkpoint

    [[models]]
    name = "flux-dev"
    family = "flux"                         # FLUX.1 dev or schnell (FluxPipeline)
    resolution = 1024
    path = "/models/FLUX.1-dev"             # SD3 and FLUX: a diffusers folder only

Relative paths are relative to the file. Nothing is downloaded, ever: a single-file checkpoint
holds only weights, so its diffusers configs must sit beside it in a folder named after it with
``.config`` appended (``/models/dreamshaper_8.config/``): model_index.json, scheduler/,
unet/config.json, vae/config.json, text_encoder/config.json and tokenizer/ (vocab.json,
merges.txt) — for SDXL also text_encoder_2/ and tokenizer_2/. The non-weight files of the
architecture's reference diffusers repository are exactly that.

This module imports no ML library: listing models is cheap.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from loraforge.adapters.ml.tiny import TINY_NAME, TINY_RESOLUTION
from loraforge.domain.ml import BaseModel, ModelFamily

TINY = BaseModel(
    name=TINY_NAME,
    family=ModelFamily.SD15,
    resolution=TINY_RESOLUTION,
    path=None,
    description="Built-in tiny SD-1.5-shaped model of coloured shapes; trains in seconds on a CPU.",
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CONFIG_SUFFIX = ".config"


class RegistryConfigError(ValueError):
    """The operator's base-model file is unreadable or describes an unusable model."""


def single_file_config_dir(checkpoint: Path) -> Path:
    """Where the diffusers configs of a single-file checkpoint live (see the module doc)."""
    return checkpoint.with_name(checkpoint.name.removesuffix(".safetensors") + CONFIG_SUFFIX)


class BaseModelRegistry:
    """The base models on offer, by name; ``tiny`` is always among them.

    ``config`` is the operator's file; ``default`` names the model used when none is named (by
    default the file's ``default``, else its first model, else ``tiny``). Paths are checked when
    a model is loaded, not here, so a missing disk fails its trainings, not the server's start.
    """

    def __init__(
        self,
        config: Path | None = None,
        *,
        default: str | None = None,
        models: Iterable[BaseModel] = (),
    ) -> None:
        configured, file_default = _read(config) if config is not None else ([], None)
        self._models: dict[str, BaseModel] = {TINY_NAME: TINY}
        for model in [*configured, *models]:
            if model.name in self._models:
                raise RegistryConfigError(f"base model {model.name!r} is defined twice")
            self._models[model.name] = model
        first = next(iter([*configured, *models]), TINY)
        self._default = default or file_default or first.name
        if self._default not in self._models:
            raise RegistryConfigError(f"default base model {self._default!r} is not defined")

    @property
    def default(self) -> str:
        return self._default

    def list(self) -> list[BaseModel]:
        return list(self._models.values())

    def get(self, name: str) -> BaseModel:
        """The named model; ``KeyError`` when there is none."""
        return self._models[name]


def _read(path: Path) -> tuple[list[BaseModel], str | None]:
    """The file's models and default. JSON may be the bare list of models; TOML (by suffix) is
    a table with ``models`` (and ``default``)."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:  # JSON and TOML syntax errors are ValueErrors
        raise RegistryConfigError(f"cannot read base-model file {path}: {exc}") from exc
    if isinstance(raw, list):
        raw = {"models": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("models", []), list):
        raise RegistryConfigError(f"{path}: expected a list of models or a table with 'models'")
    default = raw.get("default")
    models = [_parse_entry(entry, base_dir=path.parent) for entry in raw.get("models", [])]
    return models, None if default is None else str(default)


def _parse_entry(entry: Any, *, base_dir: Path) -> BaseModel:
    if not isinstance(entry, Mapping):
        raise RegistryConfigError(f"base model entry {entry!r} is not a table")
    name = str(entry.get("name", ""))
    if not _NAME.match(name):
        raise RegistryConfigError(f"base model name {name!r}: use 1-64 of a-z 0-9 . _ -")
    try:
        family = ModelFamily(str(entry.get("family")))
    except ValueError:
        families = ", ".join(ModelFamily)
        raise RegistryConfigError(f"{name}: family must be one of {families}") from None
    resolution = entry.get("resolution")
    if not isinstance(resolution, int) or not 256 <= resolution <= 2048 or resolution % 8:
        raise RegistryConfigError(f"{name}: resolution must be a multiple of 8 in 256..2048")
    if not entry.get("path"):
        raise RegistryConfigError(f"{name}: path is required")
    path = base_dir / Path(str(entry["path"]))
    if family.flow_matching and path.suffix == ".safetensors":
        raise RegistryConfigError(
            f"{name}: a {family} base model is a diffusers folder, not a single-file checkpoint"
        )
    return BaseModel(
        name=name,
        family=family,
        resolution=resolution,
        path=path,
        description=str(entry.get("description", "")),
    )


def check_model_path(name: str, path: Path) -> None:
    """Raise ``RegistryConfigError`` unless ``path`` is a loadable folder or checkpoint."""
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise RegistryConfigError(
                f"{name}: {path} is not a diffusers folder (no model_index.json)"
            )
    elif path.is_file() and path.suffix == ".safetensors":
        config = single_file_config_dir(path)
        if not (config / "model_index.json").is_file():
            raise RegistryConfigError(
                f"{name}: single-file checkpoint {path} needs its diffusers configs in {config}/"
            )
    else:
        raise RegistryConfigError(
            f"{name}: {path} is neither a diffusers folder nor a .safetensors file"
        )
