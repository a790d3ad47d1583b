"""`python -m tools.tiny`: the seeded pretraining that made the shipped weights.

Run here with a handful of steps: it must produce a diffusers folder that stock diffusers
loads, with its metrics and sample sheet, and the same seed must give the same weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors.numpy import load_file
from tools.tiny.cli import app
from tools.tiny.pretrain import reused_autoencoder_metrics
from typer.testing import CliRunner

from loraforge.adapters.ml.tiny import WEIGHTS_DIR

SHIPPED_METRICS = json.loads((WEIGHTS_DIR / "metrics.json").read_text())


def _build(out: Path) -> dict[str, float]:
    args = ["--out", str(out), "--steps", "3"]
    result = CliRunner().invoke(app, [*args, "--autoencoder-steps", "3", "--seed", "5"])
    assert result.exit_code == 0, result.output
    metrics: dict[str, float] = json.loads((out / "metrics.json").read_text())
    return metrics


def test_build_tiny_makes_a_loadable_pipeline_reproducibly(tmp_path: Path) -> None:
    first = _build(tmp_path / "a")
    assert set(first) == set(SHIPPED_METRICS)  # the same measurements as the shipped model's
    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "a"))
    assert pipe.unet.config.sample_size * 8 == 256
    with Image.open(tmp_path / "a" / "sample_sheet.png") as sheet:
        assert sheet.size == (512, 420)

    second = _build(tmp_path / "b")
    assert {k: v for k, v in second.items() if k != "wall_s"} == {
        k: v for k, v in first.items() if k != "wall_s"
    }
    for part in ("unet", "vae", "text_encoder"):
        (weights_a,) = (tmp_path / "a" / part).glob("*.safetensors")
        (weights_b,) = (tmp_path / "b" / part).glob("*.safetensors")
        a, b = load_file(str(weights_a)), load_file(str(weights_b))
        assert a.keys() == b.keys()
        assert all((a[name] == b[name]).all() for name in a), f"{part} differs"


def test_a_reused_autoencoder_keeps_its_builds_training_loss(tmp_path: Path) -> None:
    (tmp_path / "vae").mkdir()
    assert reused_autoencoder_metrics(tmp_path / "vae") == {}  # no metrics.json: nothing claimed
    (tmp_path / "metrics.json").write_text(json.dumps({"autoencoder_loss": 0.025, "wall_s": 9}))
    assert reused_autoencoder_metrics(tmp_path / "vae") == {"autoencoder_loss": 0.025}
