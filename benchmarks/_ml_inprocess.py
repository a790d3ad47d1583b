"""The in-process phases of the ML benchmark: training, prediction and adapter swaps on ``tiny``.

torch and diffusers are imported inside the functions (as the adapters do), so that
``HF_HUB_OFFLINE`` and the log levels are set before any Hugging Face library is loaded.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from benchmarks._harness import CpuWatch
from benchmarks._ml_common import TRIGGER, Timing, log
from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.registry import TINY
from loraforge.adapters.ml.trainer import DiffusersLoraTrainer
from loraforge.domain.ml import (
    GenerationSpec,
    Hyperparameters,
    LoraWeights,
    TrainingProgress,
    TrainingSample,
    TrainingSpec,
)
from loraforge.domain.work import TrainingSpeed
from loraforge.services.training_plan import plan

if TYPE_CHECKING:
    import torch

SEED = 1234


class _Vae(Protocol):
    @property
    def decoder(self) -> torch.nn.Module: ...


class _Parts(Protocol):
    """The parts of a loaded SD pipeline used here: diffusers' lazy exports hide the real
    pipeline classes from mypy (it sees the dummy objects), so they are named here."""

    @property
    def text_encoder(self) -> torch.nn.Module: ...

    @property
    def unet(self) -> torch.nn.Module: ...

    @property
    def vae(self) -> _Vae: ...

    def delete_adapters(self, adapter_names: list[str] | str) -> None: ...


def _parts(generator: DiffusersGenerator) -> _Parts:
    # The generator exposes only generate(); its resident pipeline is internal state.
    pipe = generator._resident(TINY).pipe
    assert pipe is not None, "run a prediction first: the pipeline must be loaded"
    return cast(_Parts, pipe)


def quiet_libraries() -> float:
    """Import torch, diffusers and peft with their progress bars and info logs off; returns
    the import time (a worker pays it once, at its first job)."""
    started = time.perf_counter()
    import diffusers
    import peft  # noqa: F401  # imported for its share of the time
    import torch  # noqa: F401
    import transformers

    elapsed = time.perf_counter() - started
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Loading bars of from_pretrained; these two functions carry no annotations.
    off: list[Callable[[], None]] = [
        diffusers.utils.logging.disable_progress_bar,
        transformers.utils.logging.disable_progress_bar,
    ]
    for disable in off:
        disable()
    return elapsed


def pipeline_load_s() -> float:
    """One load of the tiny pipeline from disk (what a fresh trainer or generator pays)."""
    from loraforge.adapters.ml.device import pick_placement
    from loraforge.adapters.ml.pipelines import load_pipeline

    started = time.perf_counter()
    pipe = load_pipeline(TINY, pick_placement())
    elapsed = time.perf_counter() - started
    del pipe
    gc.collect()
    return elapsed


# --- training -------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    speed: str
    strength: int
    planned_steps: int  # what plan() gives
    steps: int  # what ran (quick runs cap it)
    resolution: int
    rank: int
    learning_rate: float
    samples: int
    wall_s: float  # train() on a fresh trainer: base load + encode + loop + save
    first_step_s: float  # train() called -> step 1 reported
    loop_s: float  # step 1 reported -> last step reported
    steps_per_s: float  # steps 2..N over loop_s
    save_s: float  # last step reported -> train() returned (writing the LoRA)
    final_loss: float | None
    lora_bytes: int
    other_cpu_cores: float


def hyperparameters(speed: TrainingSpeed, strength: int, max_steps: int | None) -> Hyperparameters:
    hyper = plan(TINY, strength=strength, speed=speed, seed=SEED)
    if max_steps is not None and hyper.steps > max_steps:
        hyper = replace(hyper, steps=max_steps)
    return hyper


def train(
    speed: TrainingSpeed,
    strength: int,
    train_samples: list[TrainingSample],
    workdir: Path,
    *,
    max_steps: int | None,
) -> tuple[TrainingResult, Path]:
    """One training on a fresh trainer (as a worker's first training: the base is loaded) in
    a fresh, empty workdir (nothing to resume)."""
    planned = plan(TINY, strength=strength, speed=speed, seed=SEED)
    hyper = hyperparameters(speed, strength, max_steps)
    shutil.rmtree(workdir, ignore_errors=True)
    trainer = DiffusersLoraTrainer()
    reports: list[tuple[float, TrainingProgress]] = []
    log(
        f"training {speed.value}: {len(train_samples)} images, {hyper.steps} steps at "
        f"{hyper.resolution} px, rank {hyper.rank}"
    )
    with CpuWatch() as noise:
        started = time.perf_counter()
        path = trainer.train(
            TrainingSpec(TINY, train_samples, hyper),
            workdir=workdir,
            report=lambda progress: reports.append((time.perf_counter(), progress)),
            should_stop=lambda: False,
        )
        ended = time.perf_counter()
    first, last = reports[0][0], reports[-1][0]
    loop = last - first
    result = TrainingResult(
        speed=speed.value,
        strength=strength,
        planned_steps=planned.steps,
        steps=hyper.steps,
        resolution=hyper.resolution,
        rank=hyper.rank,
        learning_rate=hyper.learning_rate,
        samples=len(train_samples),
        wall_s=ended - started,
        first_step_s=first - started,
        loop_s=loop,
        steps_per_s=(len(reports) - 1) / loop if loop > 0 else float("nan"),
        save_s=ended - last,
        final_loss=reports[-1][1].loss,
        lora_bytes=path.stat().st_size,
        other_cpu_cores=noise.other_cores,
    )
    log(
        f"  {result.wall_s:.1f} s wall, first step after {result.first_step_s:.1f} s, "
        f"{result.steps_per_s:.1f} steps/s (other load {noise.other_cores:.2f} cores)"
    )
    del trainer
    gc.collect()
    return result, path


# --- prediction -----------------------------------------------------------------------------


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
    pipe = _parts(generator)
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


# --- adapter swap ---------------------------------------------------------------------------


@dataclass
class SwapResult:
    switch: Timing  # make the other of two resident LoRAs the active one
    load_new: Timing  # load an unseen LoRA file into the resident pipeline
    load_new_p50_by_rank: dict[str, float]
    delete: Timing  # drop a loaded adapter (what eviction costs)
    other_cpu_cores: float


def adapter_swap(
    generator: DiffusersGenerator,
    loras: Sequence[tuple[Path, int]],
    scratch: Path,
    *,
    switches: int,
    loads: int,
) -> SwapResult:
    """Times the generator's adapter handling directly.

    The ``Generator`` port exposes only ``generate``, where a swap hides behind seconds of
    denoising; so this reaches into ``DiffusersGenerator``: ``_resident`` (the loaded pipeline
    and its adapter cache), ``_activate`` (what ``generate`` calls to make a request's LoRAs
    the active set) and ``_ensure_loaded`` (what ``_activate`` calls for a file not yet in the
    cache). Both run under the resident's lock, as in ``generate``.
    """
    resident = generator._resident(TINY)
    pipe = _parts(generator)
    a, b = (LoraWeights(name=f"l{i}", path=path, scale=0.8) for i, (path, _) in enumerate(loras))
    switch_s: list[float] = []
    load_s: list[float] = []
    by_rank: dict[int, list[float]] = {}
    delete_s: list[float] = []
    with resident.lock, CpuWatch() as noise:
        generator._activate(resident, [a])  # both resident before timing
        generator._activate(resident, [b])
        for i in range(switches):
            target = a if i % 2 == 0 else b
            started = time.perf_counter()
            generator._activate(resident, [target])
            switch_s.append(time.perf_counter() - started)
        for i in range(loads):
            source, rank = loras[i % len(loras)]
            fresh = scratch / f"unseen-{i}.safetensors"  # a new path: a new cache key
            shutil.copyfile(source, fresh)
            started = time.perf_counter()
            generator._ensure_loaded(resident, fresh, keep=[fresh])
            elapsed = time.perf_counter() - started
            load_s.append(elapsed)
            by_rank.setdefault(rank, []).append(elapsed)
            _, name = resident.adapters.popitem()  # the one just loaded (most recent last)
            started = time.perf_counter()
            with warnings.catch_warnings():
                # load_lora_weights made it the active adapter; the next _activate resets that.
                warnings.filterwarnings("ignore", "Adapter .* was active", UserWarning)
                pipe.delete_adapters(name)
            delete_s.append(time.perf_counter() - started)
            fresh.unlink()
    result = SwapResult(
        switch=Timing.of(switch_s),
        load_new=Timing.of(load_s),
        load_new_p50_by_rank={f"rank {r}": Timing.of(s).p50_s for r, s in sorted(by_rank.items())},
        delete=Timing.of(delete_s),
        other_cpu_cores=noise.other_cores,
    )
    log(
        f"adapter swap: switch p50 {result.switch.p50_s * 1000:.1f} ms "
        f"(max {result.switch.max_s * 1000:.1f}); load new p50 "
        f"{result.load_new.p50_s * 1000:.1f} ms (max {result.load_new.max_s * 1000:.1f})"
    )
    return result
