"""Where the ML code runs: the device and dtype, picked once from what the machine has."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Idle OpenMP threads sleep instead of spinning: when another process holds a core (the API
# server beside the worker, a second worker), spinning threads stalled every torch op until
# rescheduled — a 512² UNet call took 4.9 s instead of 0.18 s (benchmarks/ml.py). On a machine
# of its own a spinning worker is faster (UNet call 80 against 124 ms): operators set
# OMP_WAIT_POLICY=ACTIVE there, which this default leaves alone. Must be set before torch is
# first imported; the ML adapters import torch lazily, after this module.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype  # of the frozen base weights; trainable LoRA weights stay float32


def pick_placement() -> Placement:
    """CUDA in bf16 where supported (fp16 otherwise: bf16-less GPUs), else the CPU in fp32,
    where half precision is slow and lossy."""
    import torch

    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Placement(torch.device("cuda"), dtype)
    return Placement(torch.device("cpu"), torch.float32)


def pin_threads() -> None:
    """Use every core, and always the same number of threads: CPU kernels split their sums by
    thread, so a fixed count is part of what makes the same seed give the same bytes."""
    import torch

    threads = os.cpu_count() or 1
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
