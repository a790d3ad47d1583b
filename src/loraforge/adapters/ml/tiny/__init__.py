"""The built-in ``tiny`` base model: an SD-1.5-shaped pipeline small enough to train on a CPU.

Its weights ship inside the package (``weights/``), so a fresh install needs neither a download
nor a pretraining run; the code that made them, from procedurally drawn and captioned images, is
a development tool outside the package (``tools/tiny``). This module imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

TINY_NAME = "tiny"
TINY_RESOLUTION = 256
"""Native side in pixels: latents of 32 x 32 keep pretraining and LoRA steps cheap on a CPU."""

WEIGHTS_DIR = Path(__file__).parent / "weights"
"""The packaged diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/ …)."""
