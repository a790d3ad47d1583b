"""The adapter-swap phase of the ML benchmark: switching, loading and dropping LoRAs on the
generator's resident ``tiny`` pipeline."""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._harness import CpuWatch
from benchmarks._ml_common import Timing, log
from benchmarks._ml_inprocess import pipeline_parts
from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.registry import TINY
from loraforge.domain.ml import LoraWeights


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
    pipe = pipeline_parts(generator)
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
