"""LoRA ``.safetensors`` files: their metadata, and the same LoRA in kohya names or in fp16.

Works on numpy arrays through ``safetensors.numpy`` (a base dependency): serving a file in
another format needs no torch, so an API server without the ``ml`` extra serves it too.
Conversions are exact: only names change, and fp16 is numpy's round-to-nearest-even cast,
the one torch's ``.half()`` makes.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load, save

from loraforge.adapters.ml.kohya_names import NotConvertible, kohya_names
from loraforge.domain.ml import ModelFamily
from loraforge.domain.weights import WeightsDtype, WeightsFormat

Tensors = dict[str, NDArray[np.generic]]

# What diffusers, peft and their older spellings call a layer's two LoRA matrices.
DOWN_SUFFIXES = (".lora.down.weight", ".lora_A.weight", ".lora_linear_layer.down.weight")
UP_SUFFIXES = (".lora.up.weight", ".lora_B.weight", ".lora_linear_layer.up.weight")
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own cap on a header


class SafetensorsLoraFiles:
    """``LoraFiles`` on safetensors + numpy."""

    def metadata(self, data: bytes) -> dict[str, str]:
        return read_metadata(data)

    def convert(
        self,
        data: bytes,
        *,
        weights_format: WeightsFormat,
        dtype: WeightsDtype,
        family: ModelFamily,
        metadata: Mapping[str, str],
    ) -> bytes:
        tensors = _tensors(data)
        if weights_format is WeightsFormat.KOHYA:
            tensors = to_kohya(tensors, sdxl=family is ModelFamily.SDXL)
        if dtype is WeightsDtype.FP16:
            tensors = {name: _half(array) for name, array in tensors.items()}
        return serialize(tensors, metadata)


def _tensors(data: bytes) -> Tensors:
    try:
        tensors: Tensors = load(data)
    except SafetensorError as exc:
        raise NotConvertible(f"not a readable safetensors file: {exc}") from exc
    return tensors


def read_metadata(data: bytes) -> dict[str, str]:
    """A safetensors file's ``__metadata__`` (empty when it has none): the file starts with its
    header's length (8 bytes, little-endian) and the header, a JSON object."""
    if len(data) < 8:
        raise NotConvertible("not a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(_HEADER_LIMIT, len(data) - 8):
        raise NotConvertible("not a safetensors file")
    try:
        header = json.loads(data[8 : 8 + length])
    except ValueError as exc:
        raise NotConvertible("not a safetensors file") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(metadata) if isinstance(metadata, dict) else {}


def to_kohya(tensors: Tensors, *, sdxl: bool) -> Tensors:
    """A diffusers LoRA's tensors under kohya names (``<layer>.lora_down.weight``,
    ``<layer>.lora_up.weight``) with each layer's ``<layer>.alpha``: its rank, since the
    trainer scales by alpha / rank = 1 and a diffusers file names no alpha."""
    down = _by_layer(tensors, DOWN_SUFFIXES)
    up = _by_layer(tensors, UP_SUFFIXES)
    if down.keys() != up.keys() or len(down) + len(up) != len(tensors):
        raise NotConvertible("the file holds tensors other than LoRA pairs")
    names = kohya_names(down, sdxl=sdxl)
    converted: Tensors = {}
    for layer, name in names.items():
        rank = down[layer].shape[0]
        converted[f"{name}.lora_down.weight"] = down[layer]
        converted[f"{name}.lora_up.weight"] = up[layer]
        converted[f"{name}.alpha"] = np.array(rank, dtype=down[layer].dtype)
    return converted


def _by_layer(tensors: Tensors, suffixes: tuple[str, ...]) -> Tensors:
    found: Tensors = {}
    for key, array in tensors.items():
        for suffix in suffixes:
            if key.endswith(suffix):
                found[key.removesuffix(suffix)] = array
    return found


def _half(array: NDArray[np.generic]) -> NDArray[np.generic]:
    return array.astype(np.float16) if np.issubdtype(array.dtype, np.floating) else array


def stamp(path: Path, metadata: Mapping[str, str]) -> None:
    """Add ``metadata`` to the ``__metadata__`` of the safetensors file at ``path`` (tensors
    unchanged), through a temporary file and a rename: a crash leaves the old file or the new."""
    data = path.read_bytes()
    merged = {**read_metadata(data), **metadata}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(serialize(_tensors(data), merged))
    os.replace(temporary, path)


def serialize(tensors: Tensors, metadata: Mapping[str, str]) -> bytes:
    """A safetensors file of ``tensors`` and ``metadata``; the same arguments give the same bytes.

    safetensors writes ``__metadata__`` in its hash map's order, which changes from one process
    to the next; a file's sha256 must not (receipts name it, identical weights share a blob).
    So the header is written again with the metadata's keys sorted, and padded to the 8-byte
    boundary safetensors keeps; the tensors' entries, offsets and bytes stay as they were."""
    data = save(tensors, metadata=dict(metadata))
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    text = json.dumps(ordered | header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + length :]
