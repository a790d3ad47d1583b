"""Today's ingest against the path before libvips (``benchmarks._pillow_only``), end to end:
two servers side by side, each on its own data dir and database, measured in alternating
rounds of 12 MP JPEG uploads at the same concurrency, so that both see the same background
load (the machine may be shared). The bare pipelines' CPU per image is compared the same way.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _images as images
from benchmarks._ingest_common import Config, database, log
from benchmarks._ingest_phases import BarePipeline
from benchmarks._ingest_server import create_model, measure_uploads, start_loraforge, warm_up

CONCURRENCY = 4
TARGET_SPEEDUP = 2.0


@dataclass
class PathResult:
    """One path's totals over its rounds."""

    uploads: int = 0
    wall_s: float = 0.0
    server_cpu_ms: float = 0.0
    rss_peak_mb: float = 0.0
    rounds_per_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pipeline_cpu_ms: float = 0.0  # bare pipeline, serial, CPU per image

    @property
    def per_s(self) -> float:
        return self.uploads / self.wall_s if self.wall_s else 0.0


@dataclass
class Comparison:
    concurrency: int
    rounds: int
    uploads_per_round: int
    libvips: PathResult
    pillow_only: PathResult
    speedup: float
    pipeline_cpu_ratio: float  # libvips / Pillow-only bare pipeline CPU per image
    other_cpu_cores: float


def compare(root: Path, config: Config, upload: bytes) -> Comparison:
    rounds, per_round = (2, 8) if config.quick else (4, 16)
    nonces = iter(range(50_000_000, 60_000_000))
    paths = {"libvips": PathResult(), "pillow_only": PathResult()}
    log(f"libvips vs Pillow-only: bare pipelines, {config.pipeline_runs} runs each, alternating")
    pipelines = {"libvips": BarePipeline(), "pillow_only": BarePipeline(pillow_only=True)}
    for pipeline in pipelines.values():
        pipeline.once(upload)  # warm-up: imports, codec tables
    for _ in range(config.pipeline_runs):
        for name, pipeline in pipelines.items():
            paths[name].pipeline_cpu_ms += _cpu_ms(functools.partial(pipeline.once, upload))
    for result in paths.values():
        result.pipeline_cpu_ms /= config.pipeline_runs
    noise: list[float] = []
    with ExitStack() as stack:
        servers = {}
        for name in paths:
            url = stack.enter_context(database(config))
            server, key = start_loraforge(
                root / f"compare-{name}", url, f"compare-{name}", pillow_only=name != "libvips"
            )
            stack.enter_context(server)
            baseline = warm_up(server, key, upload)
            servers[name] = (server, key, baseline, create_model(server, key, f"bench {name}"))
        for n, name in enumerate(_alternating(list(paths), rounds)):
            server, key, baseline, model_id = servers[name]
            log(f"libvips vs Pillow-only, round {n // 2 + 1}/{rounds}: {name}")
            bodies = [images.unique(upload, next(nonces)) for _ in range(per_round)]
            phase = measure_uploads(
                server,
                key,
                model_id,
                bodies,
                concurrency=CONCURRENCY,
                baseline_rss=baseline,
                name=name,
            )
            result = paths[name]
            result.uploads += phase.requests
            result.wall_s += phase.wall_s
            result.server_cpu_ms += phase.server_cpu_ms_per_request * phase.requests
            result.rss_peak_mb = max(result.rss_peak_mb, phase.rss_peak_mb)
            result.rounds_per_s.append(phase.per_s)
            result.errors += phase.errors
            noise.append(phase.other_cpu_cores)
    for result in paths.values():
        result.server_cpu_ms /= max(1, result.uploads)
    new, old = paths["libvips"], paths["pillow_only"]
    return Comparison(
        concurrency=CONCURRENCY,
        rounds=rounds,
        uploads_per_round=per_round,
        libvips=new,
        pillow_only=old,
        speedup=new.per_s / old.per_s if old.per_s else 0.0,
        pipeline_cpu_ratio=new.pipeline_cpu_ms / old.pipeline_cpu_ms,
        other_cpu_cores=sum(noise) / len(noise),
    )


def _alternating(names: list[str], rounds: int) -> Iterator[str]:
    """Each round runs both paths; who goes first alternates (ABBA...), so neither always
    follows the other's leftover load."""
    for n in range(rounds):
        yield from names if n % 2 == 0 else reversed(names)


def _cpu_ms(call: Callable[[], object]) -> float:
    started = time.process_time()
    call()
    return (time.process_time() - started) * 1000
