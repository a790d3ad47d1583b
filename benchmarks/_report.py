"""Result files and the Markdown tables of the ingest benchmark."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

Data = dict[str, Any]

_BACKEND_TITLE = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "benchmarks.ingest", *argv])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _filesystem(path: Path) -> str:
    best, fstype = "", "unknown"
    for part in psutil.disk_partitions(all=True):
        mount = str(part.mountpoint)
        if str(path).startswith(mount) and len(mount) > len(best):
            best, fstype = mount, str(part.fstype)
    return fstype


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def loraforge_source() -> Data:
    """Which loraforge was measured: its version, location and a digest of its sources."""
    import loraforge

    package = Path(loraforge.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return {
        "version": loraforge.__version__,
        "path": str(package),
        "sources_sha256": digest.hexdigest()[:16],
    }


def machine_info(data_root: Path) -> Data:
    has = importlib.util.find_spec
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(int(psutil.virtual_memory().total) / 1e9, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pillow": _version("pillow"),
        "uvicorn": _version("uvicorn"),
        "uvicorn_http": "httptools" if has("httptools") else "h11",
        "uvicorn_loop": "uvloop" if has("uvloop") else "asyncio",
        "sqlalchemy": _version("sqlalchemy"),
        "sqlite": sqlite3.sqlite_version,
        "data_dir_filesystem": _filesystem(data_root),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- Markdown -------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _latency_row(label: str, summary: Data) -> str:
    return (
        f"| {label} | {summary['n']} | {_f(summary['p50_ms'], 2)} | {_f(summary['p99_ms'], 2)} "
        f"| {_f(summary['mean_ms'], 2)} |"
    )


def markdown(data: Data) -> str:
    m, pipe, lst, rss = data["machine"], data["pipeline"], data["listing"], data["rss"]
    title = _BACKEND_TITLE[data["backend"]]
    quick = " (quick run)" if data["quick"] else ""
    lines = [
        f"#### {title}, {data['timestamp']}{quick}",
        "",
        f"Machine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_gb']} GB RAM, "
        f"{m['platform']}; Python {m['python']}, Pillow {m['pillow']}, uvicorn {m['uvicorn']} "
        f"({m['uvicorn_http']}, {m['uvicorn_loop']}), SQLAlchemy {m['sqlalchemy']}, "
        f"SQLite {m['sqlite']}; data dir on {m['data_dir_filesystem']}. "
        f"Client, server and database share the machine; load average at start "
        f"{', '.join(str(x) for x in m['load_average_at_start'])}; 'other load' below is CPU "
        "used by other programs during a measurement.",
        "",
        f"Command: `{data['command']}` ({data['duration_s']:.0f} s), loraforge "
        f"{data['loraforge']['version']} (sources sha256 {data['loraforge']['sources_sha256']}). "
        "Upload: "
        f"{pipe['width']}x{pipe['height']} JPEG of {pipe['body_bytes']:,} bytes; large upload: "
        f"{rss['body_bytes']:,} bytes (27 MP).",
        "",
        "| Target | Goal | Measured | Result |",
        "|---|---|---|---|",
    ]
    for t in data["targets"]:
        lines.append(
            f"| {t['name']} | {t['target']} | {t['measured']} | "
            f"{'pass' if t['passed'] else '**FAIL**'} |"
        )
    lines += [
        "",
        "Ingest, `POST /v1/images?type=modelInput&modelId=...` with the raw JPEG "
        "(each upload has unique bytes). ms/image is wall time / uploads (1 / throughput); "
        "the bare pipeline is measured just before each phase, serial at concurrency 1, else "
        f"on {pipe['parallel_threads']} threads (`image_workers`). Ratio = ms/image / (bare HTTP "
        "+ bare pipeline); CPU ratio = the same in CPU time (server CPU per image / (drain-only "
        "server CPU + pipeline CPU) per image), which other programs' load does not distort.",
        "",
        "| Concurrency | Uploads | Uploads/s | p50 ms | p99 ms | ms/image | bare HTTP ms "
        "| bare pipeline ms | Ratio | Server CPU ms/image (bare) | CPU ratio "
        "| Server RSS peak MB (growth) | Other load (cores) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in data["ingest"]:
        errors = f" ({len(p['errors'])}+ errors)" if p["errors"] else ""
        lines.append(
            f"| {p['concurrency']} | {p['requests']}{errors} | {_f(p['per_s'], 2)} "
            f"| {_f(p['latency']['p50_ms'], 0)} | {_f(p['latency']['p99_ms'], 0)} "
            f"| {_f(p['per_request_ms'], 0)} | {_f(p['bare_http_ms'])} "
            f"| {_f(p['bare_pipeline_ms'], 0)} | {_f(p['ratio'], 2)} "
            f"| {_f(p['server_cpu_ms_per_request'], 0)} ({_f(p['bare_cpu_ms'], 0)}) "
            f"| {_f(p['cpu_ratio'], 2)} | {_f(p['rss_peak_mb'], 0)} ({_f(p['rss_growth_mb'], 0)}) "
            f"| {_f(p['other_cpu_cores'], 2)} |"
        )
    lines += _comparison_lines(data["comparison"], data["quality"])
    serial, service = pipe["serial"], data["service_ingest"]
    lines += [
        "",
        f"Bare pipeline (decode + orient + display/thumbnail + sha256, in-process): "
        f"{_f(serial['mean_ms'], 0)} ms mean, p50 {_f(serial['p50_ms'], 0)}, "
        f"p99 {_f(serial['p99_ms'], 0)} ({serial['n']} runs; {_f(pipe['serial_cpu_ms'], 0)} ms "
        f"CPU; sha256 alone {_f(pipe['sha256_ms'])} ms); on {pipe['parallel_threads']} threads "
        f"{_f(pipe['parallel_per_image_ms'], 0)} ms/image (other load "
        f"{_f(pipe['other_cpu_cores'], 2)} cores). "
        f"Service ingest in-process (pipeline + blob store + database, no HTTP): "
        f"{_f(service['mean_ms'], 0)} ms mean, p50 {_f(service['p50_ms'], 0)}, "
        f"p99 {_f(service['p99_ms'], 0)}.",
        "",
        f"Memory, {rss['concurrency']} concurrent uploads of {rss['body_bytes']:,} bytes "
        "(server RSS sampled every 10 ms; growth = peak - settled RSS after warm-up):",
        "",
        "| Server | Uploads/s | p50 ms | p99 ms | RSS baseline MB | RSS peak MB | Growth MB "
        "| RSS after MB | Other load (cores) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, p in (("bare HTTP (drain only)", data["bare_http_large"]), ("loraforge", rss)):
        errors = f" ({len(p['errors'])}+ errors)" if p["errors"] else ""
        lines.append(
            f"| {label}{errors} | {_f(p['per_s'], 2)} | {_f(p['latency']['p50_ms'], 0)} "
            f"| {_f(p['latency']['p99_ms'], 0)} | {_f(p['rss_baseline_mb'], 0)} "
            f"| {_f(p['rss_peak_mb'], 0)} | {_f(p['rss_growth_mb'], 0)} "
            f"| {_f(p['rss_after_mb'], 0)} | {_f(p['other_cpu_cores'], 2)} |"
        )
    lines += [
        "",
        f"List page, `GET /v1/models/{{id}}/images?pageSize=20`, sequential, with "
        f"{lst['total_images']:,} images over {lst['models']:,} models in the database "
        f"({lst['seeded_rows']:,} rows seeded in {lst['seed_s']:.1f} s; other load during the "
        f"HTTP requests: {_f(lst['other_cpu_cores'], 2)} cores):",
        "",
        "| Request | n | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|---|",
        _latency_row(f"HTTP, model with {lst['model_images']} images", lst["http"]),
        _latency_row("  same, in-process ASGI app (no socket, no h11)", lst["asgi_in_process"]),
        _latency_row("  same, service call (DB query + mapping)", lst["service"]),
        _latency_row("HTTP `GET /healthz` (transport floor)", lst["healthz_http"]),
        _latency_row(
            f"HTTP, model with {lst['big_model_images']:,} images, page 1",
            lst["big_model_first_page_http"],
        ),
        _latency_row(
            f"HTTP, same model, page {lst['big_model_last_page_num']:,} (last)",
            lst["big_model_last_page_http"],
        ),
    ]
    return "\n".join(lines) + "\n"


def _comparison_lines(cmp: Data, quality: Data) -> list[str]:
    lines = [
        "",
        f"libvips path vs the Pillow-only path (`benchmarks/_pillow_only.py`): two servers side "
        f"by side, {cmp['rounds']} alternating rounds of {cmp['uploads_per_round']} uploads each "
        f"at concurrency {cmp['concurrency']} (other load {_f(cmp['other_cpu_cores'], 2)} cores); "
        "bare pipeline CPU per image measured alternately in-process:",
        "",
        "| Path | Uploads/s | Rounds (uploads/s) | Server CPU ms/image | Bare pipeline CPU ms "
        "| Server RSS peak MB | Errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, key in (("libvips (today)", "libvips"), ("Pillow only (before)", "pillow_only")):
        p = cmp[key]
        per_s = p["uploads"] / p["wall_s"] if p["wall_s"] else 0.0
        rounds = ", ".join(_f(r, 2) for r in p["rounds_per_s"])
        lines.append(
            f"| {label} | {_f(per_s, 2)} | {rounds} | {_f(p['server_cpu_ms'], 0)} "
            f"| {_f(p['pipeline_cpu_ms'], 0)} | {_f(p['rss_peak_mb'], 0)} | {len(p['errors'])} |"
        )
    lines += [
        "",
        f"Speedup {_f(cmp['speedup'], 2)} x in uploads/s; bare pipeline CPU "
        f"{_f(cmp['pipeline_cpu_ratio'], 2)} x.",
        "",
        f"Display quality, {quality['width']}x{quality['height']} pictures to a 2048 px display: "
        "PSNR against an exact Lanczos-3 resize in float of the decoded picture; the stored "
        "variant includes the JPEG quality-90 re-encoding both paths share, the resampled "
        "pixels are before it (`benchmarks/_ingest_quality.py`):",
        "",
        "| Picture | Stored variant, libvips dB | Pillow only dB | Resampled pixels, libvips dB "
        "| Pillow only dB |",
        "|---|---|---|---|---|",
    ]
    for key in ("photo", "zone_plate", "upload"):
        q = quality[key]
        lines.append(
            f"| {q['picture']} | {_f(q['libvips_db'])} | {_f(q['pillow_db'])} "
            f"| {_f(q['libvips_pixels_db'])} | {_f(q['pillow_pixels_db'])} |"
        )
    return lines


# --- files ----------------------------------------------------------------------------------


def _markers(backend: str) -> tuple[str, str]:
    return f"<!-- bench:ingest:{backend}:begin -->", f"<!-- bench:ingest:{backend}:end -->"


def update_doc(doc: Path, backend: str, table: str) -> None:
    """Replace the backend's generated block in BENCHMARKS.md; add it if it is missing."""
    begin, end = _markers(backend)
    block = f"{begin}\n{table}{end}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + f"\n\n### Latest results: {_BACKEND_TITLE[backend]}\n\n"
        text += block + "\n"
    doc.write_text(text)


def write(data: Data, results_dir: Path, doc: Path, *, update_latest: bool) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    backend = data["backend"]
    stamp = data["timestamp"].replace("-", "").replace(":", "")
    suffix = ("" if backend == "sqlite" else f"-{backend}") + ("-quick" if data["quick"] else "")
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    paths = [results_dir / f"ingest-{stamp}{suffix}.json"]
    if update_latest:
        paths.append(results_dir / f"ingest-latest{suffix}.json")
    for path in paths:
        path.write_text(text)
    if update_latest:
        update_doc(doc, backend, markdown(data))
        paths.append(doc)
    return paths
