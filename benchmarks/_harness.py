"""Plumbing for the benchmarks: server subprocesses, RSS sampling, load, statistics, databases."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``q`` in 0..100."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """Latencies in milliseconds."""

    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        ms = [s * 1000 for s in seconds]
        return cls(
            n=len(ms),
            p50_ms=percentile(ms, 50),
            p99_ms=percentile(ms, 99),
            mean_ms=sum(ms) / len(ms) if ms else math.nan,
            min_ms=min(ms, default=math.nan),
            max_ms=max(ms, default=math.nan),
        )


# --- processes ------------------------------------------------------------------------------


class Server:
    """A server subprocess on 127.0.0.1:``port``; ready once ``ready_path`` answers 200."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str],
        log_path: Path,
        ready_path: str = "/healthz",
    ) -> None:
        self.name = name
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self._proc = subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.process = psutil.Process(self._proc.pid)
        self._wait_ready(ready_path)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _wait_ready(self, path: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}:\n{self.tail()}")
            try:
                if httpx.get(self.base_url + path, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def loraforge_argv(data_dir: Path, port: int) -> list[str]:
    script = Path(sys.executable).parent / "loraforge"
    fallback = [sys.executable, "-c", "from loraforge.cli.main import app; app()"]
    cli = [str(script)] if script.exists() else fallback
    return [*cli, "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]


def echo_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks._echo_server", "--port", str(port)]


class RssSampler:
    """Samples a process's RSS in a background thread; ``peak`` is the largest value seen."""

    def __init__(self, process: psutil.Process, interval_s: float = 0.01) -> None:
        self._process = process
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.start_rss = int(process.memory_info().rss)
        self.peak = self.start_rss
        self.end_rss = self.start_rss
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, int(self._process.memory_info().rss))
                self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.end_rss = int(self._process.memory_info().rss)
        self.peak = max(self.peak, self.end_rss)


def _busy_s(times: Any) -> float:
    """Non-idle seconds of all CPUs (guest time is already counted in user time)."""
    not_busy = ("idle", "iowait", "guest", "guest_nice")
    return sum(float(getattr(times, name)) for name in times._fields if name not in not_busy)


def _own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


class CpuWatch:
    """Busy CPU of the whole machine during a block, less this process's and the servers'.

    ``other_cores`` is how many cores other programs kept busy on average: the noise floor of
    whatever was measured in the block (0 on a quiet machine).
    """

    def __init__(self, *servers: Server) -> None:
        self._servers = servers
        self.other_cores = 0.0
        self.wall_s = 0.0

    def __enter__(self) -> CpuWatch:
        self._busy = _busy_s(psutil.cpu_times())
        self._ours = _own_cpu_s() + sum(s.cpu_s() for s in self._servers)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wall_s = time.perf_counter() - self._started
        busy = _busy_s(psutil.cpu_times()) - self._busy
        ours = _own_cpu_s() + sum(s.cpu_s() for s in self._servers) - self._ours
        self.other_cores = max(0.0, busy - ours) / self.wall_s if self.wall_s > 0 else 0.0


def settle_rss(server: Server, *, quiet_s: float = 1.0) -> int:
    """RSS once the server is idle (after pending frees and the threadpool have settled)."""
    time.sleep(quiet_s)
    return server.rss()


# --- load -----------------------------------------------------------------------------------


@dataclass
class LoadRun:
    concurrency: int
    requests: int
    wall_s: float
    latencies_s: list[float]
    errors: list[str] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.requests / self.wall_s

    @property
    def per_request_ms(self) -> float:
        """Wall time per request: 1 / throughput (the latency itself at concurrency 1)."""
        return self.wall_s / self.requests * 1000


def post_load(
    base_url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    headers: Mapping[str, str],
    expect: int = 201,
    timeout_s: float = 300.0,
) -> LoadRun:
    """POST every body once, ``concurrency`` at a time, each on its own kept-alive connection."""
    return asyncio.run(
        _post_load(base_url, path, bodies, concurrency, dict(headers), expect, timeout_s)
    )


async def _post_load(
    base_url: str,
    path: str,
    bodies: Sequence[bytes],
    concurrency: int,
    headers: dict[str, str],
    expect: int,
    timeout_s: float,
) -> LoadRun:
    latencies: list[float] = []
    errors: list[str] = []
    pending = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout_s) as client:

        async def worker() -> None:
            for index in pending:  # a shared iterator: each body is taken by one worker
                started = time.perf_counter()
                response = await client.post(path, content=bodies[index], headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != expect:
                    errors.append(f"{response.status_code}: {response.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return LoadRun(concurrency, len(bodies), wall, latencies, errors)


def timed_gets(client: httpx.Client, path: str, n: int, *, expect: int = 200) -> list[float]:
    """``n`` sequential GETs; latencies in seconds. Fails on an unexpected status."""
    latencies: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        latencies.append(time.perf_counter() - started)
        if response.status_code != expect:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
    return latencies


def timed_calls(call: Callable[[], object], n: int) -> list[float]:
    latencies: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return latencies


# --- databases ------------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_postgres(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``; dropped afterwards.

    Yields its SQLAlchemy URL (psycopg 3 driver). The role needs CREATEDB.
    """
    import psycopg

    plain = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"lf_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = plain.split("?", 1)[0].rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
