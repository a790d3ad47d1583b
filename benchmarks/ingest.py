"""Ingest and listing benchmark: ``make bench`` or ``python -m benchmarks.ingest [--quick]``.

Measures, on one machine, against a real ``loraforge serve`` subprocess:

* the bare pipeline (decode, orient, variants, sha256) in-process, serial and on as many
  threads as the server decodes at once (``image_workers``);
* service ingest in-process (pipeline + blob store + database, no HTTP);
* bare HTTP: the same bodies POSTed to a drain-only Starlette app on the same uvicorn;
* end-to-end ingest of a 12 MP JPEG at concurrency 1, 4 and 16, against the target
  ``per-image cost <= 1.3 x (bare HTTP + bare pipeline)``;
* server RSS growth under 16 concurrent 20 MB uploads (target <= 200 MB);
* the p50/p99 of a model's image list page with 100,000 images in the database (target
  p99 <= 10 ms), over HTTP, in-process through the ASGI app, and at the service layer.

Results: ``benchmarks/results/ingest-<timestamp>.json``; full runs also refresh
``ingest-latest[-postgresql].json`` and their table in BENCHMARKS.md (``--quick`` runs don't).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import io
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from PIL import Image as PILImage
from sqlalchemy import Engine, create_engine, func, insert, select, text

from benchmarks import _images as images
from benchmarks import _report as report
from benchmarks._harness import (
    CpuWatch,
    LoadRun,
    RssSampler,
    Server,
    Summary,
    echo_argv,
    free_port,
    loraforge_argv,
    post_load,
    settle_rss,
    throwaway_postgres,
    timed_calls,
    timed_gets,
)
from loraforge.adapters.db.tables import Base, ImageRow
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.api.app import create_app
from loraforge.bootstrap import Container, build, migrate
from loraforge.domain.entities import ALL_FORMATS, KINDS_BY_FILTER, ImageKind
from loraforge.services.images import Upload
from loraforge.services.paging import page_request
from loraforge.settings import Settings

MB = 1_000_000  # sizes and RSS are reported in MB of 10^6 bytes, as the targets are written
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"

TARGET_INGEST_RATIO = 1.3
TARGET_RSS_GROWTH_MB = 200.0
TARGET_LIST_P99_MS = 10.0
MAX_IMAGES_PER_TYPE = 1_000_000  # uploads go to a few models; the per-type limit is not measured
PAGE_SIZE = 20


@dataclass(frozen=True)
class Config:
    quick: bool
    uploads: dict[int, int]  # concurrency -> number of uploads
    pipeline_runs: int
    large_uploads: int
    large_bytes: int
    total_images: int
    models: int
    list_requests: int
    database_url: str | None
    keep_data: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        quick = bool(args.quick)
        return cls(
            quick=quick,
            uploads={1: 4, 4: 8, 16: 16} if quick else {1: 16, 4: 32, 16: 64},
            pipeline_runs=3 if quick else 10,
            large_uploads=16,
            large_bytes=20 * MB,
            total_images=args.images,
            models=args.models,
            list_requests=100 if quick else 500,
            database_url=args.database_url,
            keep_data=bool(args.keep_data),
        )

    @property
    def backend(self) -> str:
        return "postgresql" if self.database_url else "sqlite"


# --- results --------------------------------------------------------------------------------


@dataclass
class PipelineResult:
    width: int
    height: int
    body_bytes: int
    runs: int
    serial: Summary
    serial_cpu_ms: float
    sha256_ms: float
    parallel_threads: int
    parallel_per_image_ms: float
    other_cpu_cores: float


@dataclass
class Phase:
    """One load phase against one server."""

    server: str
    concurrency: int
    requests: int
    body_bytes: int
    wall_s: float
    per_s: float
    per_request_ms: float
    latency: Summary
    errors: list[str]
    server_cpu_ms_per_request: float
    rss_baseline_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    rss_growth_mb: float  # peak minus the server's settled baseline after warm-up
    other_cpu_cores: float  # cores other programs kept busy meanwhile (noise)
    bare_http_ms: float | None = None
    bare_pipeline_ms: float | None = None
    ratio: float | None = None
    # The same comparison in CPU time, which background load does not distort: server CPU
    # per image vs (bare HTTP server CPU + bare pipeline CPU) per image.
    bare_cpu_ms: float | None = None
    cpu_ratio: float | None = None


@dataclass
class ListResult:
    total_images: int
    models: int
    seeded_rows: int
    seed_s: float
    model_images: int
    http: Summary
    other_cpu_cores: float  # during the HTTP list requests
    asgi_in_process: Summary
    service: Summary
    healthz_http: Summary
    big_model_images: int
    big_model_first_page_http: Summary
    big_model_last_page_num: int
    big_model_last_page_http: Summary


@dataclass
class Target:
    name: str
    target: str
    measured: str
    passed: bool


@dataclass
class Results:
    benchmark: str
    timestamp: str
    command: str
    quick: bool
    backend: str
    loraforge: dict[str, Any]
    machine: dict[str, Any]
    settings: dict[str, Any]
    pipeline: PipelineResult
    service_ingest: Summary
    bare_http: list[Phase]
    ingest: list[Phase]
    bare_http_large: Phase
    rss: Phase
    listing: ListResult
    targets: list[Target]
    duration_s: float


# --- helpers --------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LORAFORGE_DATA_DIR=str(data_dir),
        LORAFORGE_MAX_IMAGES_PER_TYPE=str(MAX_IMAGES_PER_TYPE),
        LORAFORGE_BLOB_SWEEP_INTERVAL_S="0",
        LORAFORGE_LOG_LEVEL="warning",
        # Only the API process is measured: no training/prediction worker processes beside it.
        LORAFORGE_WORKERS="0",
    )
    if database_url:
        env["LORAFORGE_DATABASE_URL"] = database_url
    else:
        env.pop("LORAFORGE_DATABASE_URL", None)
    return env


def bench_settings(data_dir: Path, database_url: str | None) -> Settings:
    """The settings the server subprocess gets from ``server_env``, for in-process use."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        max_images_per_type=MAX_IMAGES_PER_TYPE,
        blob_sweep_interval_s=0,
    )


@contextmanager
def database(config: Config) -> Iterator[str | None]:
    """None for SQLite (the default file in the data dir), else a throwaway PostgreSQL DB."""
    if config.database_url is None:
        yield None
    else:
        with throwaway_postgres(config.database_url) as url:
            yield url


def mb(n_bytes: float) -> float:
    return n_bytes / MB


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


def octet_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", **(extra or {})}


# --- phases ---------------------------------------------------------------------------------


class BarePipeline:
    """PillowImageProcessor.process + sha256 of the bytes, in this process: no HTTP, no DB."""

    def __init__(self) -> None:
        defaults = Settings()
        self._processor = PillowImageProcessor(
            max_pixels=defaults.max_pixels, max_frames=defaults.max_frames
        )

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


def start_loraforge(data_dir: Path, url: str | None, name: str) -> tuple[Server, str]:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = Server(
        name,
        loraforge_argv(data_dir, port),
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
        phase = measure(
            server,
            "loraforge",
            upload_path(model_id),
            batch,
            concurrency=concurrency,
            headers=octet_headers(api_headers(key)),
            baseline_rss=baseline_rss,
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
            return measure(
                server,
                "loraforge",
                upload_path(model_id),
                large,
                concurrency=len(large),
                headers=octet_headers(api_headers(key)),
                baseline_rss=baseline,
            )


# --- listing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    model_id: str  # a typical model
    model_images: int
    big_model_id: str  # one model holding the remainder, for the deep-offset case
    big_model_images: int
    rows: int
    seconds: float


def seed(engine: Engine, config: Config) -> Seeded:
    """Models and image rows straight into the tables, up to ``config.total_images`` images.

    Rows are copies of a model and an image the benchmark made through the API (so every
    column, present or future, holds a real value), with new ids, names and times; every
    image points at the uploaded image's blobs. Typical models get 18 images (10 training,
    5 reference, 3 output); one model gets whatever is left.
    """
    started = time.perf_counter()
    images_t, models_t = Base.metadata.tables["images"], Base.metadata.tables["models"]
    with engine.connect() as conn:
        existing = conn.scalar(select(func.count()).select_from(images_t)) or 0
        image = dict(
            conn.execute(select(images_t).where(images_t.c.model_id.is_not(None)).limit(1))
            .mappings()
            .one()
        )
        model = dict(
            conn.execute(select(models_t).where(models_t.c.id == image["model_id"]))
            .mappings()
            .one()
        )
    per_model = [ImageKind.TRAINING] * 10 + [ImageKind.REFERENCE] * 5 + [ImageKind.OUTPUT] * 3
    typical_models = config.models - 1
    big_images = config.total_images - existing - typical_models * len(per_model)
    if big_images < 0:
        raise ValueError("--images is too small for --models")
    start = datetime.now(UTC) - timedelta(days=60)
    model_ids = [str(uuid.uuid4()) for _ in range(config.models)]
    models = [
        {
            **model,
            "id": model_id,
            "display_name": f"seeded model {i}",
            "created_at": start + timedelta(seconds=i),
            "updated_at": start + timedelta(seconds=i),
            "deleted_at": None,
        }
        for i, model_id in enumerate(model_ids)
    ]

    def rows() -> Iterator[dict[str, Any]]:
        n = 0
        for index, model_id in enumerate(model_ids):
            kinds = per_model if index < typical_models else [ImageKind.OUTPUT] * big_images
            for kind in kinds:
                created = start + timedelta(seconds=10 * n)
                n += 1
                yield {
                    **image,
                    "id": str(uuid.uuid4()),
                    "model_id": model_id,
                    "kind": kind.value,
                    "name": f"seeded-{n}.jpg",
                    "created_at": created,
                    "last_used_at": created,
                }

    seeded = 0
    with engine.begin() as conn:
        conn.execute(insert(models_t), models)
    batch: list[dict[str, Any]] = []
    for row in rows():
        batch.append(row)
        if len(batch) == 10_000:
            with engine.begin() as conn:
                conn.execute(insert(images_t), batch)
            seeded += len(batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(images_t), batch)
        seeded += len(batch)
    if engine.dialect.name == "postgresql":
        # Autovacuum would analyse after this many inserts anyway; don't wait for it.
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return Seeded(
        model_id=model_ids[typical_models // 2],
        model_images=len(per_model),
        big_model_id=model_ids[-1],
        big_model_images=big_images,
        rows=seeded,
        seconds=time.perf_counter() - started,
    )


def listing(
    server: Server, key: str, data_dir: Path, url: str | None, config: Config
) -> ListResult:
    settings = bench_settings(data_dir, url)
    engine = create_engine(settings.resolved_database_url())
    try:
        log(f"list: seeding the database up to {config.total_images:,} images")
        seeded = seed(engine, config)
        with engine.connect() as conn:
            total = conn.scalar(select(func.count()).select_from(ImageRow)) or 0
    finally:
        engine.dispose()
    log(f"list: seeded {seeded.rows:,} rows in {seeded.seconds:.1f} s; {total:,} images in all")
    n = config.list_requests
    path = f"/v1/models/{seeded.model_id}/images?pageSize={PAGE_SIZE}"
    last_page = math.ceil(seeded.big_model_images / PAGE_SIZE)
    big_first = f"/v1/models/{seeded.big_model_id}/images?pageSize={PAGE_SIZE}"
    big_last = f"{big_first}&pageNum={last_page}"
    with httpx.Client(base_url=server.base_url, headers=api_headers(key), timeout=30) as client:
        body = client.get(path).json()
        if body["total"] != seeded.model_images:
            raise RuntimeError(f"list page: expected {seeded.model_images} images, got {body}")
        timed_gets(client, path, 50)  # warm-up
        log(f"list: {n} sequential requests over HTTP")
        with CpuWatch(server) as noise:
            http = timed_gets(client, path, n)
        healthz = timed_gets(client, "/healthz", n)
        big_first_s = timed_gets(client, big_first, n // 2)
        big_last_s = timed_gets(client, big_last, n // 2)
    log("list: in-process (ASGI app, service)")
    container = build(settings)
    try:
        asgi = asyncio.run(_asgi_gets(container, key, path, n))
        who = container.keys.authenticate(key)
        page = page_request(1, PAGE_SIZE, max_page_size=settings.max_page_size)
        kinds = KINDS_BY_FILTER["all"]

        def list_page() -> None:
            container.images.list_for_model(who, seeded.model_id, kinds=kinds, page=page)

        timed_calls(list_page, 50)
        service = timed_calls(list_page, n)
    finally:
        container.close()
    return ListResult(
        total_images=total,
        models=config.models,
        seeded_rows=seeded.rows,
        seed_s=seeded.seconds,
        model_images=seeded.model_images,
        http=Summary.of(http),
        other_cpu_cores=noise.other_cores,
        asgi_in_process=Summary.of(asgi),
        service=Summary.of(service),
        healthz_http=Summary.of(healthz),
        big_model_images=seeded.big_model_images,
        big_model_first_page_http=Summary.of(big_first_s),
        big_model_last_page_num=last_page,
        big_model_last_page_http=Summary.of(big_last_s),
    )


async def _asgi_gets(container: Container, key: str, path: str, n: int) -> list[float]:
    """The app in this process: routing, auth, DB, serialisation; no socket, no h11."""
    app = create_app(container=container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=api_headers(key)
    ) as client:
        latencies: list[float] = []
        for i in range(n + 50):
            started = time.perf_counter()
            response = await client.get(path)
            if i >= 50:  # the first 50 are warm-up
                latencies.append(time.perf_counter() - started)
            response.raise_for_status()
    return latencies


# --- targets and main -----------------------------------------------------------------------


def evaluate(ingest: list[Phase], rss: Phase, listing_result: ListResult) -> list[Target]:
    targets = []
    for phase in ingest:
        assert phase.ratio is not None
        assert phase.bare_http_ms is not None
        assert phase.bare_pipeline_ms is not None
        targets.append(
            Target(
                name=f"Ingest per image, concurrency {phase.concurrency}",
                target=f"<= {TARGET_INGEST_RATIO:.2f} x (bare HTTP + bare pipeline)",
                measured=(
                    f"{phase.ratio:.2f} x ({phase.per_request_ms:.0f} ms vs "
                    f"{phase.bare_http_ms:.1f} + {phase.bare_pipeline_ms:.0f} ms); "
                    f"in CPU time {phase.cpu_ratio or math.nan:.2f} x"
                ),
                passed=phase.ratio <= TARGET_INGEST_RATIO and not phase.errors,
            )
        )
    targets.append(
        Target(
            name=f"Server RSS growth, {rss.concurrency} concurrent {mb(rss.body_bytes):.0f} MB "
            "uploads",
            target=f"<= {TARGET_RSS_GROWTH_MB:.0f} MB",
            measured=f"{rss.rss_growth_mb:.0f} MB (peak {rss.rss_peak_mb:.0f} MB)",
            passed=rss.rss_growth_mb <= TARGET_RSS_GROWTH_MB and not rss.errors,
        )
    )
    targets.append(
        Target(
            name=f"List page p99, {listing_result.total_images:,} images",
            target=f"<= {TARGET_LIST_P99_MS:.0f} ms",
            measured=f"{listing_result.http.p99_ms:.2f} ms (p50 {listing_result.http.p50_ms:.2f})",
            passed=listing_result.http.p99_ms <= TARGET_LIST_P99_MS,
        )
    )
    return targets


def run(config: Config, root: Path) -> Results:
    started = time.perf_counter()
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"load average is {load:.2f}: other programs are busy, results will be noisy")
    workers = Settings().image_workers
    log("generating images")
    upload = images.upload_jpeg()
    large_base = images.large_jpeg(config.large_bytes)
    large_size = len(large_base) + images.NONCE_SEGMENT_BYTES
    log(f"upload JPEG: {len(upload):,} bytes; large JPEG: {large_size:,} bytes")
    counter = iter(range(10**7))
    bodies = {
        c: [images.unique(upload, next(counter)) for _ in range(n)]
        for c, n in config.uploads.items()
    }
    large = [images.unique(large_base, next(counter)) for _ in range(config.large_uploads)]
    assert len(large[0]) == config.large_bytes

    log(f"bare pipeline: {config.pipeline_runs} serial runs, then {workers} threads")
    pipeline = BarePipeline()
    pipeline_result = bare_pipeline(
        pipeline, upload, bodies[max(bodies)], config.pipeline_runs, workers
    )
    log("service ingest (in-process, no HTTP)")
    service = service_ingest(root, config, bodies[1], config.pipeline_runs)

    http_phases, http_large = bare_http(root, config, bodies, large)

    with database(config) as url:
        data_dir = root / "data"
        server, key = start_loraforge(data_dir, url, "loraforge")
        with server:
            baseline = warm_up(server, key, upload)
            ingest = end_to_end(
                server,
                key,
                bodies,
                baseline_rss=baseline,
                bare_http={p.concurrency: p for p in http_phases},
                pipeline=pipeline,
                pipeline_runs=config.pipeline_runs,
                workers=workers,
            )
            listing_result = listing(server, key, data_dir, url, config)

    rss = rss_test(root, config, upload, large)
    return Results(
        benchmark="ingest",
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=report.command_line(sys.argv[1:]),
        quick=config.quick,
        backend=config.backend,
        loraforge=report.loraforge_source(),
        machine=report.machine_info(root),
        settings={
            "image_workers": workers,
            "max_request_bytes": Settings().max_request_bytes,
            "max_images_per_type": MAX_IMAGES_PER_TYPE,
            "blob_sweep_interval_s": 0,
            "log_level": "warning",
            "workers": 0,
            "uploads": {str(c): n for c, n in config.uploads.items()},
        },
        pipeline=pipeline_result,
        service_ingest=service,
        bare_http=http_phases,
        ingest=ingest,
        bare_http_large=http_large,
        rss=rss,
        listing=listing_result,
        targets=evaluate(ingest, rss, listing_result),
        duration_s=time.perf_counter() - started,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest",
        description="Ingest and list-page benchmark against a real loraforge server.",
    )
    parser.add_argument("--quick", action="store_true", help="few uploads/requests; no docs update")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server URL (role with CREATEDB): a throwaway database is made on it; "
        "default: SQLite in the temporary data dir",
    )
    parser.add_argument("--images", type=int, default=100_000, help="images in the DB for listing")
    parser.add_argument("--models", type=int, default=5_000, help="models they are spread over")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dirs")
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only: write no result file, leave docs"
    )
    args = parser.parse_args(argv)
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a postgresql:// URL (SQLite is the default)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config.from_args(args)
    with ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="loraforge-bench-"))
        if config.keep_data:
            log(f"data kept in {root}")
        else:
            stack.callback(shutil.rmtree, root, ignore_errors=True)
        results = run(config, root)
    data = dataclasses.asdict(results)
    table = report.markdown(data)
    print(table)
    if not args.no_write:
        written = report.write(data, RESULTS_DIR, BENCHMARKS_MD, update_latest=not config.quick)
        for path in written:
            log(f"wrote {path}")
    missed = [t.name for t in results.targets if not t.passed]
    if missed:
        log("targets missed: " + "; ".join(missed))
    return 1 if missed and args.fail_on_miss else 0


if __name__ == "__main__":
    sys.exit(main())
