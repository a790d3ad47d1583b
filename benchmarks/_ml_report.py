"""Result files and the Markdown of the ML benchmark (its own block in BENCHMARKS.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

Data = dict[str, Any]

BEGIN = "<!-- bench:ml:begin -->"
END = "<!-- bench:ml:end -->"
SECTION = "## Training and generation (`make bench-ml`)"


def _f(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _ms(seconds: float) -> str:
    return _f(seconds * 1000, 1)


def _oversubscribed(by_threads: dict[str, float]) -> str:
    """A warning when all cores' threads run slower than one: they are waiting for each other
    while other programs hold a core (OpenMP threads spin at every operator by default)."""
    if len(by_threads) < 2:
        return ""
    most, one = by_threads[max(by_threads, key=lambda k: int(k.split()[0]))], by_threads["1 thread"]
    if most <= 2 * one:
        return ""
    return (
        f" **Oversubscribed**: on every core the call is {most / one:.0f}x slower than on one "
        "thread, because other programs hold a core and torch's OpenMP threads spin-wait for "
        "each other at every operator; all times above are inflated by it."
    )


def markdown(data: Data) -> str:
    m, w = data["machine"], data["tiny_weights"]
    quick = " (quick run: fewer repetitions, trainings capped)" if data["quick"] else ""
    if data["label"]:
        quick += f" (variant `{data['label']}`)"
    env = " ".join(f"{k}={v}" for k, v in m["thread_env"].items()) or "none set"
    background = (
        "; ".join(
            f"`{p['command'][:60]}` {p['cpu_percent']} %" for p in data["background_at_start"]
        )
        or "none above 10 % of a core"
    )
    lines = [
        f"#### {data['timestamp']}{quick}",
        "",
        f"Machine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_gb']} GB RAM, "
        f"{m['platform']}; Python {m['python']}, torch {m['torch']} ({m['torch_threads']} "
        f"threads, {m['device']}; OpenMP/MKL environment: {env}), diffusers {m['diffusers']}, "
        f"peft {m['peft']}. Tiny weights "
        f"sha256 {w['sha256']} ({w['modified']})"
        f"{'; **they changed during the run**' if data['tiny_weights_changed_during_run'] else ''}"
        ". Load average at start "
        f"{', '.join(str(x) for x in m['load_average_at_start'])}; other programs busy at "
        f"start: {background}. 'Other load' is CPU other programs used during a measurement.",
        "",
        f"Command: `{data['command']}` ({data['duration_s']:.0f} s), loraforge "
        f"{data['loraforge']['version']} (sources sha256 {data['loraforge']['sources_sha256']}).",
        "",
        "| Target | Goal | Measured | Result | Other load (cores) |",
        "|---|---|---|---|---|",
    ]
    for t in data["targets"]:
        result = "pass" if t["passed"] else "**FAIL**"
        if t["passed"] is None:
            result = "info"
        lines.append(
            f"| {t['name']} | {t['goal']} | {t['measured']} | {result} "
            f"| {_f(t['other_cpu_cores'], 2)} |"
        )
    setup = data["setup"]
    lines += [
        "",
        f"Trainings in-process (`DiffusersLoraTrainer`, a fresh trainer each: the base is "
        f"loaded, as in a worker's first training; fresh workdir) on {setup['samples']} "
        f"procedurally drawn {setup['side']}x{setup['side']} pictures passed as the core's "
        f"display variant ({setup['display_format']}, {setup['display_bytes_mean']:,} bytes on "
        f"average), captions `a photo of <TRIGGER>, ...`; hyperparameters from "
        f"`plan(tiny, strength, speed)`. Tiny pipeline load alone: "
        f"{_f(setup['pipeline_load_s'], 2)} s; importing torch + diffusers + peft: "
        f"{_f(setup['import_s'], 1)} s (once per worker, not counted below).",
        "",
        "| Speed | Strength | Steps | Resolution | Rank | LR | Wall s | First step s "
        "| Steps/s | Save s | Final loss | Other load (cores) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in data["trainings"]:
        steps = str(t["steps"])
        if t["steps"] != t["planned_steps"]:
            steps += f" of {t['planned_steps']}"
        lines.append(
            f"| {t['speed']} | {t['strength']} | {steps} | {t['resolution']} | {t['rank']} "
            f"| {t['learning_rate']:g} | {_f(t['wall_s'])} | {_f(t['first_step_s'], 2)} "
            f"| {_f(t['steps_per_s'], 2)} | {_f(t['save_s'], 2)} | {_f(t['final_loss'], 3)} "
            f"| {_f(t['other_cpu_cores'], 2)} |"
        )
    p, b = data["prediction"], data["prediction"]["breakdown"]
    lines += [
        "",
        f"Prediction in-process (`DiffusersGenerator`): {p['width']}x{p['height']}, "
        f"{p['steps']} steps, guidance {p['guidance_scale']}, one LoRA (the `fast` one) at scale "
        f"{p['lora_scale']}, {p['output_format'].upper()} out. Cold first call on a fresh "
        f"generator (pipeline load + LoRA load + run): {_f(p['cold_s'], 2)} s.",
        "",
        "| Images | Runs | p50 s | max s | min s | p50 s per image | Other load (cores) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in p["runs"]:
        t = r["timing"]
        lines.append(
            f"| {r['num_images']} | {t['n']} | {_f(t['p50_s'], 2)} | {_f(t['max_s'], 2)} "
            f"| {_f(t['min_s'], 2)} | {_f(r['per_image_p50_s'], 2)} "
            f"| {_f(r['other_cpu_cores'], 2)} |"
        )
    unet_per_call = b["unet_s"] / b["unet_calls"] * 1000 if b["unet_calls"] else math.nan
    lines += [
        "",
        f"Where a warm 1-image prediction's {_f(b['total_s'], 2)} s go (forward hooks): UNet "
        f"{_f(b['unet_s'], 2)} s ({b['unet_calls']} calls of batch 2 for guidance, "
        f"{_f(unet_per_call, 0)} ms each), VAE decode {_f(b['vae_decode_s'], 2)} s, text encoder "
        f"{_ms(b['text_encoder_s'])} ms, the rest (scheduler, LoRA activation, image conversion, "
        f"JPEG) {_f(b['rest_s'], 2)} s. The same UNet call replayed: "
        + ", ".join(f"{k} {_f(v, 0)} ms" for k, v in b["unet_call_ms_by_threads"].items())
        + "."
        + _oversubscribed(b["unet_call_ms_by_threads"]),
    ]
    s = data["swap"]
    ranks = ", ".join(f"{rank} {_ms(v)} ms" for rank, v in s["load_new_p50_by_rank"].items())
    lines += [
        "",
        "Adapter swap, with the `fast` (rank 4) and `high_quality` (rank 16) LoRAs resident in "
        "the generator's pipeline: `_activate` of the other one (`set_adapters` + "
        "`enable_lora`), as `generate` does for a request with a different LoRA; loading an "
        "unseen LoRA file is `_ensure_loaded` (`load_lora_weights`).",
        "",
        "| Operation | n | p50 ms | max ms | mean ms |",
        "|---|---|---|---|---|",
        f"| Switch the active LoRA (both resident) | {s['switch']['n']} "
        f"| {_ms(s['switch']['p50_s'])} | {_ms(s['switch']['max_s'])} "
        f"| {_ms(s['switch']['mean_s'])} |",
        f"| Load an unseen LoRA file (p50 {ranks}) | {s['load_new']['n']} "
        f"| {_ms(s['load_new']['p50_s'])} | {_ms(s['load_new']['max_s'])} "
        f"| {_ms(s['load_new']['mean_s'])} |",
        f"| Delete a loaded adapter (eviction) | {s['delete']['n']} "
        f"| {_ms(s['delete']['p50_s'])} | {_ms(s['delete']['max_s'])} "
        f"| {_ms(s['delete']['mean_s'])} |",
    ]
    a, tr = data["api"], data["api"]["training"]
    lines += [
        "",
        f"API: `loraforge serve` (SQLite, `LORAFORGE_WORKERS=1`: its supervised worker process "
        f"trains beside the API on the same cores), `GET {a['path']}` for a model with "
        f"{a['model_images']} training images ({a['models']} models), sequential requests on "
        f"one kept-alive connection. Busy = while a `{tr['speed']}` training (strength "
        f"{tr['strength']}, {tr['steps']} steps) ran its loop (steps "
        f"{a['busy']['training_step_before']} to {a['busy']['training_step_after']}; status "
        f"afterwards `{a['busy']['training_status_after']}`). That training, through the API: "
        f"queued {_f(tr['queued_s'], 1)} s, ran {_f(tr['run_s'], 1)} s (worker: torch import, "
        f"pipeline load, training, storing the LoRA), `{tr['status']}`.",
        "",
        "| Window | n | p50 ms | p99 ms | max ms | Server (cores) | Worker (cores) "
        "| Client (cores) | Other load (cores) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, win in (("idle", a["idle"]), ("training", a["busy"])):
        lat = win["latency"]
        lines.append(
            f"| {label} | {lat['n']} | {_f(lat['p50_ms'], 2)} | {_f(lat['p99_ms'], 2)} "
            f"| {_f(lat['max_ms'], 2)} | {_f(win['server_cpu_cores'], 2)} "
            f"| {_f(win['worker_cpu_cores'], 2)} | {_f(win['benchmark_cpu_cores'], 2)} "
            f"| {_f(win['other_cpu_cores'], 2)} |"
        )
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, table: str) -> None:
    """Replace the block between this benchmark's markers; append the section if missing.
    Everything outside the markers (the ingest benchmark's blocks included) is left as is."""
    block = f"{BEGIN}\n{table}{END}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n### Latest results\n\n{block}\n"
    doc.write_text(text)


def write(data: Data, results_dir: Path, doc: Path, *, update_latest: bool) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = data["timestamp"].replace("-", "").replace(":", "")
    suffix = ("-quick" if data["quick"] else "") + (f"-{data['label']}" if data["label"] else "")
    text = json.dumps(data, indent=2) + "\n"
    paths = [results_dir / f"ml-{stamp}{suffix}.json"]
    if update_latest:
        paths.append(results_dir / "ml-latest.json")
    for path in paths:
        path.write_text(text)
    if update_latest:
        update_doc(doc, markdown(data))
        paths.append(doc)
    return paths
