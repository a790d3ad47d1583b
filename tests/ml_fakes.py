"""Fast stand-ins for the Trainer and Generator ports (the real ones are tested in tests/ml)."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from loraforge.domain.ml import GenerationSpec, TrainingProgress, TrainingSpec, TrainingStopped


class FakeTrainer:
    """Counts steps, checkpoints every ``checkpoint_every`` and writes a deterministic file."""

    def __init__(self, *, step_hook: Callable[[int], None] | None = None) -> None:
        self.step_hook = step_hook
        self.specs: list[TrainingSpec] = []
        self.started_from: list[int] = []

    def train(
        self,
        spec: TrainingSpec,
        *,
        workdir: Path,
        report: Callable[[TrainingProgress], None],
        should_stop: Callable[[], bool],
    ) -> Path:
        self.specs.append(spec)
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = workdir / "checkpoint"
        start = int(checkpoint.read_text()) if checkpoint.exists() else 0
        self.started_from.append(start)
        total = spec.hyper.steps
        for step in range(start + 1, total + 1):
            if should_stop():
                raise TrainingStopped
            if self.step_hook:
                self.step_hook(step)
            report(TrainingProgress(step=step, total_steps=total, loss=1.0 / step))
            if step % spec.hyper.checkpoint_every == 0:
                checkpoint.write_text(str(step))
        out = workdir / "lora.safetensors"
        digest = hashlib.sha256(b"".join(s.image for s in spec.samples)).hexdigest()
        out.write_text(f"fake-lora {digest} {spec.hyper}")
        return out


class FakeGenerator:
    """Solid images whose colour depends on the seed, prompt and LoRA scales."""

    def __init__(self) -> None:
        self.specs: list[GenerationSpec] = []
        self.gate = threading.Event()
        self.gate.set()

    def generate(self, spec: GenerationSpec) -> list[bytes]:
        self.gate.wait(10)
        self.specs.append(spec)
        outputs = []
        for n in range(spec.num_images):
            loras = [(lora.name, lora.scale) for lora in spec.loras]
            key = f"{spec.prompt}|{spec.seed}|{n}|{loras}"
            r, g, b = hashlib.sha256(key.encode()).digest()[:3]
            buffer = io.BytesIO()
            image = Image.new("RGB", (spec.width, spec.height), (r, g, b))
            image.save(buffer, format="PNG" if spec.output_format == "png" else "JPEG")
            outputs.append(buffer.getvalue())
        return outputs


class FakeCaptioner:
    """Captions ``a picture of <8 hex of the bytes' sha256>``; records what it captioned.

    Calls numbered in ``fail_on`` (from 1) raise; ``hook`` runs inside each call with its
    number (as if a client acted while the model was busy); ``text`` replaces the caption
    (``""``: the model said nothing)."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.fail_on: set[int] = set()
        self.hook: Callable[[int], None] | None = None
        self.text: str | None = None

    def caption(self, image: bytes) -> str:
        self.calls.append(image)
        if self.hook is not None:
            self.hook(len(self.calls))
        if len(self.calls) in self.fail_on:
            raise RuntimeError("the captioning model failed")
        return self.text if self.text is not None else caption_of(image)


def caption_of(image: bytes) -> str:
    """What ``FakeCaptioner`` says about ``image``."""
    return f"a picture of {hashlib.sha256(image).hexdigest()[:8]}"
