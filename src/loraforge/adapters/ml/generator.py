"""Generation with diffusers: base pipelines stay resident, LoRA adapters come and go.

Each base model is loaded once and kept, with a small LRU of LoRA adapters loaded into it
(``load_lora_weights(path, adapter_name=...)``; the least recently used is deleted when a new
one needs room). A request activates its LoRAs with ``set_adapters(names, adapter_weights)``;
when every scale is 0 (or there are none) LoRA layers are disabled, so the output is exactly
the base model's. Same spec and seed, same bytes: one CPU generator per image seeded with
``seed + i``, a fixed thread count, and encoders without timestamps or tunable randomness.

torch and diffusers are imported inside the methods: importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loraforge.adapters.ml.device import Placement, pick_placement, pin_threads
from loraforge.domain.ml import BaseModel, GenerationSpec, LoraWeights

if TYPE_CHECKING:
    from PIL.Image import Image

    from loraforge.adapters.ml.pipelines import Pipeline

JPEG_QUALITY = 92


@dataclass
class _Resident:
    """One base pipeline, its loaded adapters (file key → adapter name, oldest first) and the
    lock that serialises its use: a pipeline's scheduler and active adapters are shared state.
    ``forgotten``: files whose adapters must go once the pipeline is free (under the
    generator's lock)."""

    pipe: Pipeline | None = None
    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    forgotten: set[str] = field(default_factory=set)


class DiffusersGenerator:
    """``Generator`` on diffusers pipelines. ``max_adapters`` LoRAs stay loaded per base."""

    def __init__(self, *, placement: Placement | None = None, max_adapters: int = 8) -> None:
        self._placement = placement
        self._max_adapters = max_adapters
        self._residents: dict[BaseModel, _Resident] = {}
        self._lock = threading.Lock()  # guards _residents and _placement only

    def generate(self, spec: GenerationSpec) -> list[bytes]:
        if spec.width % 8 or spec.height % 8:
            raise ValueError("width and height must be multiples of 8")
        if spec.output_format not in ("png", "jpeg"):
            raise ValueError(f"unknown output format {spec.output_format!r}")
        resident = self._resident(spec.base_model)
        with resident.lock:
            pin_threads()
            if resident.pipe is None:
                from loraforge.adapters.ml.pipelines import load_pipeline

                resident.pipe = load_pipeline(spec.base_model, self._placement_now())
            try:
                self._activate(resident, spec.loras)
                images = _run(resident.pipe, spec)
            finally:
                self._unload_forgotten(resident)
        return [encode_image(image, spec.output_format) for image in images]

    def forget(self, paths: Collection[Path]) -> None:
        files = {str(path.resolve()) for path in paths}
        with self._lock:
            residents = list(self._residents.values())
            for resident in residents:
                resident.forgotten |= files
        for resident in residents:
            if resident.lock.acquire(blocking=False):  # else its generation unloads them
                try:
                    self._unload_forgotten(resident)
                finally:
                    resident.lock.release()

    def _unload_forgotten(self, resident: _Resident) -> None:
        """Under ``resident.lock``: delete the adapters loaded from forgotten files."""
        with self._lock:
            files, resident.forgotten = resident.forgotten, set()
        for key in [k for k in resident.adapters if _file_of(k) in files]:
            assert resident.pipe is not None
            resident.pipe.delete_adapters(resident.adapters.pop(key))

    def _resident(self, base: BaseModel) -> _Resident:
        with self._lock:
            return self._residents.setdefault(base, _Resident())

    def _placement_now(self) -> Placement:
        with self._lock:
            self._placement = self._placement or pick_placement()
            return self._placement

    def _activate(self, resident: _Resident, loras: list[LoraWeights]) -> None:
        """Make exactly the request's LoRAs active, at their scales (several files may carry
        the same weights: their scales add)."""
        assert resident.pipe is not None
        scales: dict[Path, float] = {}
        for lora in loras:
            if lora.scale != 0:
                scales[lora.path] = scales.get(lora.path, 0.0) + lora.scale
        if not scales:
            if resident.adapters:
                resident.pipe.disable_lora()
            return
        names = [self._ensure_loaded(resident, path, keep=scales.keys()) for path in scales]
        resident.pipe.set_adapters(names, adapter_weights=list(scales.values()))
        resident.pipe.enable_lora()

    def _ensure_loaded(self, resident: _Resident, path: Path, *, keep: Iterable[Path]) -> str:
        assert resident.pipe is not None
        key = _file_key(path)
        if key in resident.adapters:
            resident.adapters.move_to_end(key)
            return resident.adapters[key]
        wanted = {_file_key(p) for p in keep}
        while len(resident.adapters) >= self._max_adapters:
            oldest = next((k for k in resident.adapters if k not in wanted), None)
            if oldest is None:
                break  # a request with more LoRAs than the cache holds: keep them all for now
            resident.pipe.delete_adapters(resident.adapters.pop(oldest))
        name = "lora_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        with warnings.catch_warnings():
            # peft warns that a model will hold several adapters: that is the point here.
            warnings.filterwarnings("ignore", "Already found a `peft_config`", UserWarning)
            resident.pipe.load_lora_weights(str(path), adapter_name=name)
        resident.adapters[key] = name
        return name


def _file_key(path: Path) -> str:
    """A file's identity: its path plus size and mtime, so a file replaced in place reloads."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _file_of(key: str) -> str:
    """The resolved path in a ``_file_key``."""
    return key.rsplit("|", 2)[0]


def _run(pipe: Pipeline, spec: GenerationSpec) -> list[Image]:
    import torch

    generators = [torch.Generator("cpu").manual_seed(spec.seed + i) for i in range(spec.num_images)]
    result = pipe(
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt or None,
        width=spec.width,
        height=spec.height,
        num_images_per_prompt=spec.num_images,
        guidance_scale=spec.guidance_scale,
        num_inference_steps=spec.num_inference_steps,
        generator=generators,
        output_type="pil",
    )
    return list(result.images)


def encode_image(image: Image, output_format: str) -> bytes:
    """PNG or JPEG bytes that depend on the pixels only (Pillow writes no timestamps)."""
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG", compress_level=6)
    else:
        image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()
