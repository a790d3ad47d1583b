"""The prediction phase of the ML benchmark: timed generations with a LoRA on ``tiny``, and
where one warm prediction's time goes.

torch is imported inside the functions (as the adapters do); see ``_ml_inprocess``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._harness import CpuWatch
from benchmarks._ml_common import TRIGGER, Timing, log
from benchmarks._ml_inprocess import SEED, pipeline_parts
from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.registry import TINY
from loraforge.domain.ml import GenerationSpec, LoraWeights

if TYPE_CHECKING:
    import torch


@dataclass
class PredictionRuns:
    num_images: int
    timing: Timing
    per_image_p50_s: float
    other_cpu_cores: float


@dataclass
class Breakdown:
    """Where one warm 1-image prediction's time goes (forward hooks on the pipeline's parts)."""

    total_s: float
    text_encoder_s: float
    unet_s: float
    unet_calls: int
    vae_decode_s: float
    rest_s: float  # scheduler, LoRA activation, latents <-> PIL, JPEG encoding, Python
    unet_call_ms_by_threads: dict[str, float]  # one call replayed, p50 of 3, per thread count


@dataclass
class PredictionResult:
    width: int
    height: int
    steps: int
    guidance_scale: float
    lora_scale: float
    output_format: str
    cold_s: float  # first call on a fresh generator: pipeline load + LoRA load + the run
    runs: list[PredictionRuns]
    breakdown: Breakdown


def generation_spec(lora: Path, *, num_images: int, seed: int) -> GenerationSpec:
    return GenerationSpec(
        base_model=TINY,
        prompt=f"a photo of {TRIGGER}, a red square on a blue background",
        seed=seed,
        width=512,
        height=512,
        num_images=num_images,
        guidance_scale=7.5,
        num_inference_steps=20,
        output_format="jpeg",
        loras=[LoraWeights(name="bench", path=lora, scale=0.8)],
    )


@dataclass
class _Clock:
    seconds: float = 0.0
    calls: int = 0
    started: list[float] = field(default_factory=list)


@contextmanager
def _hooked(module: torch.nn.Module) -> Iterator[_Clock]:
    """Wall time spent inside ``module``'s forward while the block runs."""
    clock = _Clock()

    def before(_module: torch.nn.Module, _args: tuple[Any, ...]) -> None:
        clock.started.append(time.perf_counter())

    def after(_module: torch.nn.Module, _args: tuple[Any, ...], _output: Any) -> None:
        clock.seconds += time.perf_counter() - clock.started.pop()
        clock.calls += 1

    handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield clock
    finally:
        for handle in handles:
            handle.remove()


def predict(generator: DiffusersGenerator, lora: Path, *, runs: dict[int, int]) -> PredictionResult:
    """Cold first call, then ``runs[num_images]`` timed calls per image count, then one
    instrumented call for the breakdown."""
    log("prediction: cold first call (pipeline load + LoRA load + run)")
    started = time.perf_counter()
    generator.generate(generation_spec(lora, num_images=1, seed=SEED))
    cold = time.perf_counter() - started
    log(f"  cold: {cold:.2f} s")
    measured = []
    seed = SEED + 1
    for num_images, n in runs.items():
        seconds = []
        with CpuWatch() as noise:
            for _ in range(n):
                spec = generation_spec(lora, num_images=num_images, seed=seed)
                seed += num_images
                started = time.perf_counter()
                images = generator.generate(spec)
                seconds.append(time.perf_counter() - started)
                assert len(images) == num_images
        timing = Timing.of(seconds)
        measured.append(
            PredictionRuns(num_images, timing, timing.p50_s / num_images, noise.other_cores)
        )
        log(
            f"  {num_images} image(s): p50 {timing.p50_s:.2f} s, max {timing.max_s:.2f} s over "
            f"{n} runs (other load {noise.other_cores:.2f} cores)"
        )
    return PredictionResult(
        width=512,
        height=512,
        steps=20,
        guidance_scale=7.5,
        lora_scale=0.8,
        output_format="jpeg",
        cold_s=cold,
        runs=measured,
        breakdown=breakdown(generator, lora),
    )


def breakdown(generator: DiffusersGenerator, lora: Path) -> Breakdown:
    pipe = pipeline_parts(generator)
    spec = generation_spec(lora, num_images=1, seed=SEED)
    captured: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def capture(_module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not captured:
            captured.append((args, kwargs))

    handle = pipe.unet.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with (
            _hooked(pipe.text_encoder) as text,
            _hooked(pipe.unet) as unet,
            _hooked(pipe.vae.decoder) as vae,
        ):
            started = time.perf_counter()
            generator.generate(spec)
            total = time.perf_counter() - started
    finally:
        handle.remove()
    args, kwargs = captured[0]
    return Breakdown(
        total_s=total,
        text_encoder_s=text.seconds,
        unet_s=unet.seconds,
        unet_calls=unet.calls,
        vae_decode_s=vae.seconds,
        rest_s=total - text.seconds - unet.seconds - vae.seconds,
        unet_call_ms_by_threads=unet_by_threads(pipe.unet, args, kwargs),
    )


def unet_by_threads(
    unet: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], runs: int = 3
) -> dict[str, float]:
    """One UNet call of that prediction (512², batch 2), replayed on every core's thread and on
    one: when other programs hold a core, 2 threads that busy-wait for each other at every
    operator can be far slower than 1 (OpenMP's default active wait policy)."""
    import torch

    from loraforge.adapters.ml.device import pin_threads

    result = {}
    try:
        for threads in sorted({os.cpu_count() or 1, 1}, reverse=True):
            torch.set_num_threads(threads)
            seconds = []
            with torch.no_grad():
                for _ in range(runs):
                    started = time.perf_counter()
                    unet(*args, **kwargs)
                    seconds.append(time.perf_counter() - started)
            result[f"{threads} thread{'s' if threads > 1 else ''}"] = (
                Timing.of(seconds).p50_s * 1000
            )
    finally:
        pin_threads()
    return result
