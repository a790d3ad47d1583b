"""Ingest and listing benchmark: ``make bench`` or ``python -m benchmarks.ingest [--quick]``.

Measures, on one machine, against a real ``loraforge serve`` subprocess:

* the bare pipeline (decode, orient, variants, sha256) in-process, serial and on as many
  threads as the server decodes at once (``image_workers``);
* service ingest in-process (pipeline + blob store + database, no HTTP);
* bare HTTP: the same bodies POSTed to a drain-only Starlette app on the same uvicorn;
* end-to-end ingest of a 12 MP JPEG at concurrency 1, 4 and 16, against the target
  ``per-image cost <= 1.3 x (bare HTTP + bare pipeline)``;
* end-to-end 12 MP JPEG uploads/s at concurrency 4 against the path before libvips
  (``benchmarks._pillow_only``), two servers measured in alternating rounds (target >= 2x);
* the display variant's PSNR against an exact Lanczos resize, photo (target >= 40 dB) and
  zone plate (target: within 3 dB of the Pillow-only path);
* server RSS growth under 16 concurrent 20 MB uploads (target <= 200 MB);
* the p50/p99 of a model's image list page with 100,000 images in the database (target
  p99 <= 10 ms), over HTTP, in-process through the ASGI app, and at the service layer.

Results: ``benchmarks/results/ingest-<timestamp>.json``; full runs also refresh
``ingest-latest[-postgresql].json`` and their table in BENCHMARKS.md (``--quick`` runs don't).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import _images as images
from benchmarks import _report as report
from benchmarks._harness import Summary
from benchmarks._ingest_common import MAX_IMAGES_PER_TYPE, Config, database, log, mb
from benchmarks._ingest_compare import TARGET_SPEEDUP, Comparison, compare
from benchmarks._ingest_listing import listing
from benchmarks._ingest_phases import (
    BarePipeline,
    bare_http,
    bare_pipeline,
    end_to_end,
    rss_test,
    service_ingest,
)
from benchmarks._ingest_quality import PHOTO_MIN_DB, ZONE_PLATE_MAX_LOSS_DB, Quality
from benchmarks._ingest_quality import measure as measure_quality
from benchmarks._ingest_results import ListResult, Phase, PipelineResult, Target
from benchmarks._ingest_server import start_loraforge, warm_up
from loraforge.settings import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"

TARGET_INGEST_RATIO = 1.3
TARGET_RSS_GROWTH_MB = 200.0
TARGET_LIST_P99_MS = 10.0


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
    comparison: Comparison
    quality: Quality
    targets: list[Target]
    duration_s: float


# --- targets and main -----------------------------------------------------------------------


def evaluate(
    ingest: list[Phase],
    rss: Phase,
    listing_result: ListResult,
    comparison: Comparison,
    quality: Quality,
) -> list[Target]:
    new, old = comparison.libvips, comparison.pillow_only
    targets = [
        Target(
            name=f"{quality.width}x{quality.height} JPEG uploads/s at concurrency "
            f"{comparison.concurrency}, vs the Pillow-only path",
            target=f">= {TARGET_SPEEDUP:.1f} x",
            measured=f"{comparison.speedup:.2f} x ({new.per_s:.2f} vs {old.per_s:.2f} /s, "
            f"{comparison.rounds} alternating rounds of {comparison.uploads_per_round})",
            passed=comparison.speedup >= TARGET_SPEEDUP and not new.errors and not old.errors,
        ),
        Target(
            name="Display variant PSNR vs exact Lanczos, photo",
            target=f">= {PHOTO_MIN_DB:.0f} dB",
            measured=f"{quality.photo.libvips_db:.1f} dB (Pillow-only path "
            f"{quality.photo.pillow_db:.1f})",
            passed=quality.photo.libvips_db >= PHOTO_MIN_DB,
        ),
        Target(
            name="Display variant PSNR vs exact Lanczos, zone plate",
            target=f">= Pillow-only path - {ZONE_PLATE_MAX_LOSS_DB:.0f} dB",
            measured=f"{quality.zone_plate.libvips_db:.1f} dB (Pillow-only path "
            f"{quality.zone_plate.pillow_db:.1f})",
            passed=quality.zone_plate.libvips_db
            >= quality.zone_plate.pillow_db - ZONE_PLATE_MAX_LOSS_DB,
        ),
    ]
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

    comparison = compare(root, config, upload)
    log("display quality: PSNR against an exact Lanczos resize")
    quality = measure_quality(upload)
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
        comparison=comparison,
        quality=quality,
        targets=evaluate(ingest, rss, listing_result, comparison, quality),
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
