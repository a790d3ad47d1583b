"""Fixtures for the ML adapter tests: real training and generation on the built-in tiny model.

Trainings are small (tens of steps at 128 px) and shared per session, so the whole folder runs
in a few minutes on two CPU cores. Nothing may come from a model hub: HF_HUB_OFFLINE is set
before any Hugging Face library is imported (they read it at import time).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import pytest

from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.registry import TINY
from loraforge.adapters.ml.trainer import DiffusersLoraTrainer
from loraforge.domain.ml import (
    Hyperparameters,
    TrainingProgress,
    TrainingSpec,
)
from tests.ml.pictures import samples

LORA_HYPER = Hyperparameters(
    steps=60, learning_rate=2e-3, rank=4, resolution=128, checkpoint_every=1000, seed=7
)


@pytest.fixture(scope="session")
def trainer() -> DiffusersLoraTrainer:
    return DiffusersLoraTrainer()


@pytest.fixture(scope="session")
def generator() -> DiffusersGenerator:
    return DiffusersGenerator()


def train(
    trainer: DiffusersLoraTrainer, spec: TrainingSpec, workdir: Path
) -> tuple[Path, list[TrainingProgress]]:
    reports: list[TrainingProgress] = []
    path = trainer.train(spec, workdir=workdir, report=reports.append, should_stop=lambda: False)
    return path, reports


@pytest.fixture(scope="session")
def red_lora(trainer: DiffusersLoraTrainer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA on six red striped squares, captioned with the trigger word."""
    spec = TrainingSpec(
        TINY, samples(6, seed=1, shape="square", colour="red", pattern="striped"), LORA_HYPER
    )
    return train(trainer, spec, tmp_path_factory.mktemp("red"))[0]


@pytest.fixture(scope="session")
def blue_lora(trainer: DiffusersLoraTrainer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA on six blue dotted circles, captioned with the same trigger word."""
    spec = TrainingSpec(
        TINY, samples(6, seed=2, shape="circle", colour="blue", pattern="dotted"), LORA_HYPER
    )
    return train(trainer, spec, tmp_path_factory.mktemp("blue"))[0]
