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
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image as PILImage
from PIL import ImageOps

from loraforge.adapters.ml.device import Placement, pick_placement, pin_threads
from loraforge.domain.ml import BaseModel, GenerationSpec, LoraWeights, ModelFamily

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
    scheduler: Any = None  # the scheduler the base model came with: its config is the default
    forgotten: set[str] = field(default_factory=set)
    derived: dict[bool, Any] = field(default_factory=dict)  # inpaint? → image-to-image pipeline

    def image_to_image(self, *, inpaint: bool) -> Any:
        """The image-to-image (or inpainting) pipeline over the resident pipeline's modules."""
        if inpaint not in self.derived:
            from loraforge.adapters.ml.pipelines import image_to_image

            assert self.pipe is not None
            self.derived[inpaint] = image_to_image(self.pipe, inpaint=inpaint)
        return self.derived[inpaint]


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
                resident.scheduler = resident.pipe.scheduler
            try:
                self._activate(resident, spec.loras)
                return render(
                    resident.pipe,
                    spec,
                    default_scheduler=resident.scheduler,
                    derive=resident.image_to_image,
                )
            finally:
                self._unload_forgotten(resident)

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


def render(
    pipe: Pipeline,
    spec: GenerationSpec,
    *,
    default_scheduler: Any,
    derive: Callable[..., Any] | None = None,
) -> list[bytes]:
    """``spec``'s encoded images from ``pipe`` with the LoRA adapters active in it now
    (``spec.loras`` is the caller's business: ``generate`` activates them, the trainer's
    samples use the adapter it trains). ``default_scheduler`` is the one the base model came
    with; ``derive(inpaint=...)`` gives the image-to-image pipeline over ``pipe`` (built anew
    when not given). The one code path of predictions and training samples."""

    def derived(*, inpaint: bool) -> Any:
        from loraforge.adapters.ml.pipelines import image_to_image

        return image_to_image(pipe, inpaint=inpaint)

    with warnings.catch_warnings():
        # Some schedulers (euler_a) turn tensors into numpy arrays with np.array(t), which
        # numpy 2 reports as a DeprecationWarning of torch's __array__: noise between the
        # libraries, not a problem of the request.
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        images = _run(pipe, spec, default_scheduler, derive or derived)
    return [encode_image(image, spec.output_format) for image in images]


def _run(
    pipe: Pipeline, spec: GenerationSpec, default_scheduler: Any, derive: Callable[..., Any]
) -> list[Image]:
    """Render at ``spec.render_size`` (from ``init_image`` when given, repainting only the
    white of ``mask_image`` when given), then resize to the requested size with Lanczos."""
    import torch

    from loraforge.adapters.ml.pipelines import make_scheduler

    size = spec.render_size
    generators = [torch.Generator("cpu").manual_seed(spec.seed + i) for i in range(spec.num_images)]
    family = spec.base_model.family
    if family.flow_matching and spec.scheduler is not None:
        raise ValueError(f"a {family} base model samples with its own scheduler only")
    common: dict[str, Any] = {
        "prompt": spec.prompt,
        # FLUX is guidance-distilled: no classifier-free guidance, so a negative prompt is
        # ignored (passing it would switch on diffusers' doubled-cost "true CFG").
        "negative_prompt": None if family.guidance_free else spec.negative_prompt or None,
        "num_images_per_prompt": spec.num_images,
        "guidance_scale": spec.guidance_scale,
        "num_inference_steps": spec.num_inference_steps,
        "generator": generators,
        "output_type": "pil",
    }
    scheduler = make_scheduler(default_scheduler, spec.scheduler)
    if spec.init_image is None:
        pipe.scheduler = scheduler
        images = pipe(width=size[0], height=size[1], **common).images
        return [_resized(i, (spec.width, spec.height)) for i in images]
    init = _fitted(spec.init_image, size)
    mask = None if spec.mask_image is None else _mask(spec.mask_image, size)
    if int(spec.num_inference_steps * spec.strength) < 1:
        images = [init] * spec.num_images  # no denoising step left: nothing is repainted
    else:
        painter = derive(inpaint=mask is not None)
        painter.scheduler = scheduler
        extra: dict[str, Any] = {"image": init, "strength": spec.strength}
        if mask is not None:
            extra |= {"mask_image": mask, "width": size[0], "height": size[1]}
        if family is ModelFamily.SD3:
            # diffusers' SD3 image-to-image encodes the init image once per generator but
            # indexes it as a batch of that many (0.42): an empty batch. One image per call.
            one = common | {"num_images_per_prompt": 1}
            images = [painter(**one | {"generator": [g]}, **extra).images[0] for g in generators]
        else:
            images = painter(**common, **extra).images
    full = (spec.width, spec.height)
    outputs = [_resized(i, full) for i in images]
    if spec.mask_image is None:
        return outputs
    # What is not to be repainted is the init image's own pixels, as painters' tools do: the
    # VAE's round trip would otherwise blur it slightly.
    original, keep = _fitted(spec.init_image, full), _mask(spec.mask_image, full)
    return [PILImage.composite(o, original, keep) for o in outputs]


def _fitted(data: bytes, size: tuple[int, int]) -> Image:
    """An input picture, RGB, cropped (centred) to ``size``'s aspect ratio and resized."""
    with PILImage.open(io.BytesIO(data)) as picture:
        return ImageOps.fit(picture.convert("RGB"), size, PILImage.Resampling.LANCZOS)


def _mask(data: bytes, size: tuple[int, int]) -> Image:
    """A mask fitted like its init image, binarised as diffusers does: white repaints."""
    with PILImage.open(io.BytesIO(data)) as picture:
        grey = ImageOps.fit(picture.convert("L"), size, PILImage.Resampling.LANCZOS)
    return grey.point(lambda v: 255 if v >= 128 else 0)


def _resized(image: Image, size: tuple[int, int]) -> Image:
    if image.size == size:
        return image
    return image.resize(size, PILImage.Resampling.LANCZOS)


def encode_image(image: Image, output_format: str) -> bytes:
    """PNG or JPEG bytes that depend on the pixels only (Pillow writes no timestamps)."""
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG", compress_level=6)
    else:
        image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()
