"""The training phase of the ML benchmark: one training on ``tiny`` on a fresh trainer."""

from __future__ import annotations

import gc
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks._harness import CpuWatch
from benchmarks._ml_common import log
from benchmarks._ml_inprocess import SEED
from loraforge.adapters.ml.registry import TINY
from loraforge.adapters.ml.trainer import DiffusersLoraTrainer
from loraforge.domain.ml import Hyperparameters, TrainingProgress, TrainingSample, TrainingSpec
from loraforge.domain.work import TrainingSpeed
from loraforge.services.training_plan import plan


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
