"""The ``loraforge serve`` subprocess of the ingest benchmark: starting and warming it up,
its API calls, and one measured load phase against it (or the bare HTTP server)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from benchmarks import _images as images
from benchmarks._harness import (
    CpuWatch,
    LoadRun,
    RssSampler,
    Server,
    Summary,
    free_port,
    loraforge_argv,
    post_load,
    settle_rss,
)
from benchmarks._ingest_common import log, mb, server_env
from benchmarks._ingest_results import Phase
from benchmarks._pillow_only import serve_argv as pillow_serve_argv


def api_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_model(server: Server, key: str, name: str) -> str:
    response = httpx.post(
        server.base_url + "/v1/models",
        json={"displayName": name},
        headers=api_headers(key),
        timeout=30,
    )
    response.raise_for_status()
    model_id: str = response.json()["id"]
    return model_id


def upload_path(model_id: str) -> str:
    return f"/v1/images?type=modelInput&modelId={model_id}"


def measure(
    server: Server,
    name: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    headers: dict[str, str],
    baseline_rss: int,
) -> Phase:
    cpu_before = server.cpu_s()
    with CpuWatch(server) as cpu, RssSampler(server.process) as rss:
        run: LoadRun = post_load(
            server.base_url, path, bodies, concurrency=concurrency, headers=headers
        )
    cpu_ms = (server.cpu_s() - cpu_before) * 1000
    if run.errors:
        log(f"{name} c={concurrency}: {len(run.errors)} failed, first: {run.errors[0]}")
    return Phase(
        server=name,
        concurrency=concurrency,
        requests=run.requests,
        body_bytes=len(bodies[0]),
        wall_s=run.wall_s,
        per_s=run.per_s,
        per_request_ms=run.per_request_ms,
        latency=Summary.of(run.latencies_s),
        errors=run.errors[:5],
        server_cpu_ms_per_request=cpu_ms / run.requests,
        rss_baseline_mb=mb(baseline_rss),
        rss_peak_mb=mb(rss.peak),
        rss_after_mb=mb(rss.end_rss),
        rss_growth_mb=mb(rss.peak - baseline_rss),
        other_cpu_cores=cpu.other_cores,
    )


def measure_uploads(
    server: Server,
    key: str,
    model_id: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    baseline_rss: int,
    name: str = "loraforge",
) -> Phase:
    """``measure`` of raw-body training-image uploads to ``model_id``."""
    return measure(
        server,
        name,
        upload_path(model_id),
        bodies,
        concurrency=concurrency,
        headers=octet_headers(api_headers(key)),
        baseline_rss=baseline_rss,
    )


def octet_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", **(extra or {})}


def start_loraforge(
    data_dir: Path, url: str | None, name: str, *, pillow_only: bool = False
) -> tuple[Server, str]:
    """``pillow_only``: the server of ``benchmarks._pillow_only`` (the path before libvips)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = pillow_serve_argv if pillow_only else loraforge_argv
    server = Server(
        name,
        argv(data_dir, port),
        port=port,
        env=server_env(data_dir, url),
        log_path=data_dir.parent / f"{name}.log",
    )
    key = (data_dir / "dev-api-key").read_text().strip()
    return server, key


def warm_up(server: Server, key: str, upload: bytes) -> int:
    """Two sequential uploads and a listing; returns the settled RSS afterwards."""
    model_id = create_model(server, key, "bench warm-up")
    warm = [images.unique(upload, 90_000_000 + i) for i in range(2)]
    headers = octet_headers(api_headers(key))
    run = post_load(server.base_url, upload_path(model_id), warm, concurrency=1, headers=headers)
    if run.errors:
        raise RuntimeError(f"warm-up upload failed: {run.errors[0]}")
    httpx.get(
        f"{server.base_url}/v1/models/{model_id}/images", headers=api_headers(key), timeout=30
    ).raise_for_status()
    return settle_rss(server)
