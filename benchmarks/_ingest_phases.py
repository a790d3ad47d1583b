"""The ingest phases: bare pipeline, in-process service ingest, bare HTTP, end-to-end ingest
through the server and the server's RSS under large concurrent uploads."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image as PILImage

from benchmarks._harness import (
    CpuWatch,
    Server,
    Summary,
    echo_argv,
    free_port,
    post_load,
    settle_rss,
    timed_calls,
)
from benchmarks._ingest_common import Config, bench_settings, database, log, mb
from benchmarks._ingest_results import Phase, PipelineResult
from benchmarks._ingest_server import (
    create_model,
    measure,
    measure_uploads,
    octet_headers,
    start_loraforge,
    warm_up,
)
from benchmarks._pillow_only import processor as pillow_processor
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.bootstrap import build, migrate
from loraforge.domain.entities import ALL_FORMATS, ImageKind
from loraforge.services.images import Upload
from loraforge.settings import Settings


class BarePipeline:
    """PillowImageProcessor.process + sha256 of the bytes, in this process: no HTTP, no DB.
    ``pillow_only``: the path before libvips (``benchmarks._pillow_only``)."""

    def __init__(self, *, pillow_only: bool = False) -> None:
        defaults = Settings()
        make = pillow_processor if pillow_only else PillowImageProcessor
        self._processor = make(max_pixels=defaults.max_pixels, max_frames=defaults.max_frames)

    def once(self, body: bytes) -> None:
        self._processor.process(io.BytesIO(body), allowed=ALL_FORMATS)
        hashlib.sha256(body).hexdigest()

    def cost(self, bodies: Sequence[bytes], threads: int) -> tuple[float, float]:
        """Wall ms per image (1 / throughput) and CPU ms per image on ``threads`` threads."""
        cpu_before = time.process_time()
        started = time.perf_counter()
        if threads == 1:
            for body in bodies:
                self.once(body)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(self.once, bodies))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        return wall * 1000 / len(bodies), cpu * 1000 / len(bodies)


def bare_pipeline(
    pipeline: BarePipeline, upload: bytes, bodies: Sequence[bytes], runs: int, threads: int
) -> PipelineResult:
    pipeline.once(upload)  # warm-up: imports, codec tables
    with CpuWatch() as noise:
        cpu_before = time.process_time()
        serial = timed_calls(lambda: pipeline.once(upload), runs)
        cpu_ms = (time.process_time() - cpu_before) * 1000 / runs
        hashing = timed_calls(lambda: hashlib.sha256(upload).hexdigest(), runs)
        parallel_ms, _ = pipeline.cost(bodies[: runs * threads], threads)
    width, height = image_size(upload)
    return PipelineResult(
        width=width,
        height=height,
        body_bytes=len(upload),
        runs=runs,
        serial=Summary.of(serial),
        serial_cpu_ms=cpu_ms,
        sha256_ms=Summary.of(hashing).mean_ms,
        parallel_threads=threads,
        parallel_per_image_ms=parallel_ms,
        other_cpu_cores=noise.other_cores,
    )


def image_size(data: bytes) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(data)) as im:
        return im.size


def service_ingest(root: Path, config: Config, bodies: Sequence[bytes], runs: int) -> Summary:
    """ImageService.ingest in-process: pipeline + blob store (fsync) + database, no HTTP."""
    with database(config) as url:
        settings = bench_settings(root / "service", url)
        migrate(settings)
        container = build(settings)
        try:
            issued = container.keys.create(name="bench")
            who = container.keys.authenticate(issued.plaintext)
            model = container.models.create(who, display_name="bench service ingest")

            def ingest(body: bytes) -> None:
                container.images.ingest(
                    who,
                    Upload(stream=io.BytesIO(body)),
                    kind=ImageKind.TRAINING,
                    model_id=model.id,
                    allowed=ALL_FORMATS,
                )

            ingest(bodies[-1])  # warm-up
            items = iter(bodies)
            return Summary.of(timed_calls(lambda: ingest(next(items)), runs))
        finally:
            container.close()


def bare_http(
    root: Path, config: Config, bodies: dict[int, list[bytes]], large: list[bytes]
) -> tuple[list[Phase], Phase]:
    port = free_port()
    env = dict(os.environ)
    with Server("echo", echo_argv(port), port=port, env=env, log_path=root / "echo.log") as echo:
        headers = octet_headers()
        post_load(echo.base_url, "/upload", bodies[1][:2], concurrency=1, headers=headers)
        baseline = settle_rss(echo, quiet_s=0.5)
        phases = []
        for concurrency, batch in bodies.items():
            log(f"bare HTTP: {len(batch)} uploads at concurrency {concurrency}")
            phases.append(
                measure(
                    echo,
                    "bare-http",
                    "/upload",
                    batch,
                    concurrency=concurrency,
                    headers=headers,
                    baseline_rss=baseline,
                )
            )
        log(f"bare HTTP: {len(large)} x {mb(len(large[0])):.0f} MB at concurrency {len(large)}")
        large_phase = measure(
            echo,
            "bare-http",
            "/upload",
            large,
            concurrency=len(large),
            headers=headers,
            baseline_rss=settle_rss(echo, quiet_s=0.5),
        )
    return phases, large_phase


def end_to_end(
    server: Server,
    key: str,
    bodies: dict[int, list[bytes]],
    *,
    baseline_rss: int,
    bare_http: dict[int, Phase],
    pipeline: BarePipeline,
    pipeline_runs: int,
    workers: int,
) -> list[Phase]:
    """Each phase right after its own bare-pipeline measurement, so both see the same
    background load: serial for concurrency 1, else on ``image_workers`` threads."""
    phases = []
    for concurrency, batch in bodies.items():
        threads = min(concurrency, workers)
        pipe_ms, pipe_cpu_ms = pipeline.cost(batch[: pipeline_runs * threads], threads)
        log(f"ingest: {len(batch)} uploads at concurrency {concurrency}")
        model_id = create_model(server, key, f"bench c={concurrency}")
        phase = measure_uploads(
            server, key, model_id, batch, concurrency=concurrency, baseline_rss=baseline_rss
        )
        http = bare_http[concurrency]
        phase.bare_http_ms = http.per_request_ms
        phase.bare_pipeline_ms = pipe_ms
        phase.ratio = phase.per_request_ms / (http.per_request_ms + pipe_ms)
        phase.bare_cpu_ms = http.server_cpu_ms_per_request + pipe_cpu_ms
        phase.cpu_ratio = phase.server_cpu_ms_per_request / phase.bare_cpu_ms
        phases.append(phase)
    return phases


def rss_test(root: Path, config: Config, upload: bytes, large: list[bytes]) -> Phase:
    """A fresh server: warm up, then ``len(large)`` concurrent ~20 MB uploads."""
    with database(config) as url:
        server, key = start_loraforge(root / "rss-data", url, "loraforge-rss")
        with server:
            baseline = warm_up(server, key, upload)
            log(f"RSS: {len(large)} x {mb(len(large[0])):.0f} MB at concurrency {len(large)}")
            model_id = create_model(server, key, "bench rss")
            return measure_uploads(
                server, key, model_id, large, concurrency=len(large), baseline_rss=baseline
            )
