"""What the in-process phases of the ML benchmark share: the libraries' import, one pipeline
load, and the parts of the generator's loaded pipeline that the phases time. The phases
themselves: ``_ml_training`` (training), ``_ml_generation`` (prediction), ``_ml_swap``
(adapter swaps), all on ``tiny``.

torch and diffusers are imported inside the functions (as the adapters do), so that
``HF_HUB_OFFLINE`` and the log levels are set before any Hugging Face library is loaded.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.registry import TINY

if TYPE_CHECKING:
    import torch

SEED = 1234


class _Vae(Protocol):
    @property
    def decoder(self) -> torch.nn.Module: ...


class PipelineParts(Protocol):
    """The parts of a loaded SD pipeline used here: diffusers' lazy exports hide the real
    pipeline classes from mypy (it sees the dummy objects), so they are named here."""

    @property
    def text_encoder(self) -> torch.nn.Module: ...

    @property
    def unet(self) -> torch.nn.Module: ...

    @property
    def vae(self) -> _Vae: ...

    def delete_adapters(self, adapter_names: list[str] | str) -> None: ...


def pipeline_parts(generator: DiffusersGenerator) -> PipelineParts:
    # The generator exposes only generate(); its resident pipeline is internal state.
    pipe = generator._resident(TINY).pipe
    assert pipe is not None, "run a prediction first: the pipeline must be loaded"
    return cast(PipelineParts, pipe)


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
