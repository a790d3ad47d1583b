"""The result records of the ingest benchmark's phases (written to the results JSON)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks._harness import Summary


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
