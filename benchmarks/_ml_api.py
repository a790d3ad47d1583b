"""The API phase of the ML benchmark: list-request latency while the server's worker trains.

``loraforge serve`` runs as a subprocess with ``LORAFORGE_WORKERS=1``: the supervisor starts one
worker process beside the API, as in production, and both share the machine's cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks._harness import Server, Summary, free_port, loraforge_argv, timed_gets
from benchmarks._ml_common import CpuShare, Picture, log

PAGE_SIZE = 20
POLL_S = 0.25


@dataclass
class Window:
    """One series of sequential list requests and who used the CPU meanwhile."""

    latency: Summary
    wall_s: float
    server_cpu_cores: float
    worker_cpu_cores: float
    benchmark_cpu_cores: float  # the HTTP client
    other_cpu_cores: float
    training_status_after: str | None = None
    training_step_before: int | None = None
    training_step_after: int | None = None


@dataclass
class ApiTraining:
    speed: str
    strength: int
    steps: int
    status: str
    queued_s: float | None  # createdAt -> startedAt
    run_s: float | None  # startedAt -> finishedAt (worker: torch import, load, train, store)


@dataclass
class ApiResult:
    path: str
    models: int
    model_images: int
    idle: Window
    busy: Window
    ratio: float  # busy p99 / idle p99
    training: ApiTraining
    valid: bool  # the training was processing for the whole busy window


def _worker(server: Server, timeout_s: float = 30.0) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in server.process.children(recursive=True):
            try:
                if "worker" in child.cmdline():
                    return child
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise RuntimeError(f"no worker process under the server; see {server.log_path}")


def _settle(worker: psutil.Process, timeout_s: float = 60.0) -> None:
    """Wait until the worker has finished starting (imports, migrations) and sits idle."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = worker.cpu_times()
        time.sleep(1.0)
        after = worker.cpu_times()
        if (after.user + after.system) - (before.user + before.system) < 0.05:
            return
    log("the worker did not settle; measuring anyway")


def _window(
    client: httpx.Client, path: str, n: int, server: Server, worker: psutil.Process
) -> Window:
    with CpuShare(server=server.process, worker=worker) as cpu:
        latencies = timed_gets(client, path, n)
    return Window(
        latency=Summary.of(latencies),
        wall_s=cpu.wall_s,
        server_cpu_cores=cpu.cores["server"],
        worker_cpu_cores=cpu.cores["worker"],
        benchmark_cpu_cores=cpu.cores["benchmark"],
        other_cpu_cores=cpu.other_cores,
    )


def _training(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.get(url)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _wait(client: httpx.Client, url: str, done: Any, what: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = _training(client, url)
        if done(body):
            return body
        if body["status"] in ("failed", "canceled"):
            raise RuntimeError(f"the training ended before {what}: {body}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout_s:.0f} s: {body}")
        time.sleep(POLL_S)


def _finish(client: httpx.Client, url: str, *, timeout_s: float) -> dict[str, Any]:
    """The training once it ended; canceled when it runs past ``timeout_s`` (the window was
    measured already: its end-to-end time is for information only)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = _training(client, url)
        if body["status"] not in ("queued", "processing"):
            return body
        time.sleep(POLL_S)
    log(f"API: the training did not end within {timeout_s:.0f} s; canceling it")
    client.post(f"{url}/cancel").raise_for_status()
    return _wait(client, url, lambda b: b["status"] == "canceled", "the cancel", 120.0)


def _span(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _server_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LORAFORGE_DATABASE_URL", None)  # SQLite in the data dir
    env.update(
        LORAFORGE_DATA_DIR=str(data_dir),
        LORAFORGE_WORKERS="1",  # the supervised worker trains beside the API, as shipped
        LORAFORGE_BLOB_SWEEP_INTERVAL_S="0",
        LORAFORGE_LOG_LEVEL="warning",
        HF_HUB_OFFLINE="1",  # the worker inherits it: nothing may come from a hub
    )
    return env


def api_under_training(
    root: Path,
    pics: Sequence[Picture],
    *,
    requests: int,
    extra_models: int,
    speed: str,
    strength: int,
    training_timeout_s: float,
) -> ApiResult:
    data_dir = root / "api-data"
    data_dir.mkdir(parents=True)
    port = free_port()
    argv = loraforge_argv(data_dir, port)
    log_path = root / "loraforge-api.log"
    log(f"API: starting loraforge serve with one worker (log {log_path})")
    with Server("loraforge", argv, port=port, env=_server_env(data_dir), log_path=log_path) as srv:
        key = (data_dir / "dev-api-key").read_text().strip()
        worker = _worker(srv)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=srv.base_url, headers=headers, timeout=60) as client:
            model_id = ""
            for m in range(1 + extra_models):
                response = client.post("/v1/models", json={"displayName": f"bench model {m}"})
                response.raise_for_status()
                current = str(response.json()["id"])
                model_id = model_id or current
                for pic in pics if m == 0 else pics[:3]:
                    client.post(
                        f"/v1/images?type=modelInput&modelId={current}",
                        content=pic.original,
                        headers={"Content-Type": "application/octet-stream"},
                    ).raise_for_status()
            path = f"/v1/models/{model_id}/images?pageSize={PAGE_SIZE}"
            total = client.get(path).json()["total"]
            if total != len(pics):
                raise RuntimeError(f"expected {len(pics)} training images, the API lists {total}")
            _settle(worker)
            timed_gets(client, path, 50)  # warm-up
            log(f"API: {requests} sequential list requests, idle")
            idle = _window(client, path, requests, srv, worker)
            log(f"  idle p99 {idle.latency.p99_ms:.2f} ms (p50 {idle.latency.p50_ms:.2f})")

            created = client.post(
                f"/v1/models/{model_id}/trainings",
                json={"trainingStrength": strength, "trainingSpeed": speed},
            )
            created.raise_for_status()
            url = f"/v1/models/{model_id}/trainings/{created.json()['trainingId']}"
            log(f"API: started a {speed} training (strength {strength}); waiting for step 1")
            # The window starts once the loop runs (step >= 1), not during the worker's imports
            # and model load: steady training is what a long job looks like to the API.
            before = _wait(
                client, url, lambda b: b["progress"]["step"] >= 1, "the first step", 300.0
            )
            log(f"API: {requests} sequential list requests while the training runs")
            busy = _window(client, path, requests, srv, worker)
            after = _training(client, url)
            busy.training_step_before = int(before["progress"]["step"])
            busy.training_step_after = int(after["progress"]["step"])
            busy.training_status_after = str(after["status"])
            log(
                f"  busy p99 {busy.latency.p99_ms:.2f} ms (p50 {busy.latency.p50_ms:.2f}); worker "
                f"{busy.worker_cpu_cores:.2f} cores, steps {busy.training_step_before} -> "
                f"{busy.training_step_after} of {after['progress']['totalSteps']}"
            )
            log("API: waiting for the training to finish")
            final = _finish(client, url, timeout_s=training_timeout_s)
    return ApiResult(
        path=f"/v1/models/{{id}}/images?pageSize={PAGE_SIZE}",
        models=1 + extra_models,
        model_images=len(pics),
        idle=idle,
        busy=busy,
        ratio=busy.latency.p99_ms / idle.latency.p99_ms,
        training=ApiTraining(
            speed=speed,
            strength=strength,
            steps=int(final["progress"]["totalSteps"]),
            status=str(final["status"]),
            queued_s=_span(final["createdAt"], final["startedAt"]),
            run_s=_span(final["startedAt"], final["finishedAt"]),
        ),
        valid=busy.training_status_after == "processing",
    )
