"""Shared pieces of the ML benchmark: timings in seconds, CPU shares, logging, training data."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import psutil
from PIL import Image
from tools.tiny.procedural import draw_dataset

from benchmarks._harness import percentile
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.adapters.ml.tiny import WEIGHTS_DIR
from loraforge.domain.captions import TrainingWords
from loraforge.domain.entities import ALL_FORMATS
from loraforge.domain.ml import TrainingSample
from loraforge.settings import Settings

TRIGGER = "FJA90AB"
"""A fixed trigger word (the service draws a random one) so captions, and runs, repeat."""
CAPTIONS = TrainingWords()  # the default caption template, as a training without words uses


def log(message: str) -> None:
    print(f"[bench-ml {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Timing:
    """Wall times in seconds."""

    n: int
    p50_s: float
    mean_s: float
    min_s: float
    max_s: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        return cls(
            n=len(seconds),
            p50_s=percentile(seconds, 50),
            mean_s=sum(seconds) / len(seconds) if seconds else math.nan,
            min_s=min(seconds, default=math.nan),
            max_s=max(seconds, default=math.nan),
        )


# --- CPU ------------------------------------------------------------------------------------


def _busy_s() -> float:
    """Non-idle CPU seconds of the whole machine (guest time is already in user time)."""
    times = psutil.cpu_times()
    not_busy = ("idle", "iowait", "guest", "guest_nice")
    return sum(float(getattr(times, name)) for name in times._fields if name not in not_busy)


def _cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return math.nan  # it exited: its share is unknown, not zero
    return float(times.user + times.system)


class CpuShare:
    """Cores each named process, this process and everything else kept busy during a block.

    ``cores[name]`` is CPU seconds / wall seconds; ``cores["benchmark"]`` is this process;
    ``other_cores`` is the machine's busy time less all of those: other programs' load.
    """

    def __init__(self, **processes: psutil.Process) -> None:
        self._processes = {"benchmark": psutil.Process(), **processes}
        self.cores: dict[str, float] = {}
        self.other_cores = 0.0
        self.wall_s = 0.0

    def __enter__(self) -> CpuShare:
        self._before = {name: _cpu_s(p) for name, p in self._processes.items()}
        self._busy = _busy_s()
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wall_s = time.perf_counter() - self._started
        busy = _busy_s() - self._busy
        wall = self.wall_s or math.inf
        used = {name: _cpu_s(p) - self._before[name] for name, p in self._processes.items()}
        self.cores = {name: seconds / wall for name, seconds in used.items()}
        known = sum(seconds for seconds in used.values() if not math.isnan(seconds))
        self.other_cores = max(0.0, busy - known) / wall


def busy_processes(sample_s: float = 1.0, min_percent: float = 10.0) -> list[dict[str, Any]]:
    """Other programs using at least ``min_percent`` of a core right now (the noise floor)."""
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.pid != me]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(sample_s)
    busy = []
    for p in procs:
        try:
            percent = float(p.cpu_percent(None))
        except psutil.Error:
            continue
        if percent >= min_percent:
            command = " ".join(p.info.get("cmdline") or [p.info.get("name") or "?"])
            busy.append({"pid": p.pid, "cpu_percent": round(percent), "command": command[:120]})
    return sorted(busy, key=lambda entry: -int(entry["cpu_percent"]))


# --- what was measured ----------------------------------------------------------------------


def tiny_weights() -> dict[str, Any]:
    """Which tiny weights were measured: a digest of the shipped folder and when it changed
    (another process may replace them while the benchmark runs)."""
    digest = hashlib.sha256()
    newest = 0.0
    for path in sorted(p for p in WEIGHTS_DIR.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(WEIGHTS_DIR)).encode() + b"\0" + path.read_bytes())
        newest = max(newest, path.stat().st_mtime)
    return {
        "sha256": digest.hexdigest()[:16],
        "modified": datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# --- training data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    original: bytes  # the PNG a client would upload
    display: bytes  # the core's display variant of it: what a trainer receives
    caption: str  # the scene's words, without the trigger


def pictures(count: int, *, side: int, seed: int) -> list[Picture]:
    """``count`` procedurally drawn red squares on varied backgrounds and patterns (one subject,
    as a LoRA's training set is), as PNG uploads and as the core's display variants."""
    settings = Settings()
    processor = PillowImageProcessor(max_pixels=settings.max_pixels, max_frames=settings.max_frames)
    result = []
    for pixels, caption in draw_dataset(count, seed=seed, size=side, shape="square", colour="red"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        png = buffer.getvalue()
        display = processor.process(io.BytesIO(png), allowed=ALL_FORMATS).display
        result.append(Picture(original=png, display=display, caption=caption))
    return result


def samples(pics: Sequence[Picture]) -> list[TrainingSample]:
    """Training samples as the training service builds them: display bytes, trigger captions."""
    return [
        TrainingSample(image=p.display, caption=CAPTIONS.caption(TRIGGER, p.caption)) for p in pics
    ]
