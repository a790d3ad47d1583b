"""Fast stand-ins for the Trainer and Generator ports (the real ones are tested in tests/ml)."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import save

from loraforge.domain.ml import GenerationSpec, TrainingProgress, TrainingSpec, TrainingStopped
from loraforge.domain.samples import RenderedSample, SamplePlan, SampleRound

# The attention blocks of the tiny model's UNet (one layer per block; down block 0 and up
# block 2 have none), each with the four projections the trainer adapts, twice.
TINY_BLOCKS = [
    "down_blocks.1.attentions.0",
    "down_blocks.2.attentions.0",
    "mid_block.attentions.0",
    *(f"up_blocks.{b}.attentions.{j}" for b in (0, 1) for j in (0, 1)),
]
TINY_LAYERS = [
    f"unet.{block}.transformer_blocks.0.{attn}.{proj}"
    for block in TINY_BLOCKS
    for attn in ("attn1", "attn2")
    for proj in ("to_q", "to_k", "to_v", "to_out.0")
]


def diffusers_lora(
    metadata: Mapping[str, str], *, seed: int = 0, rank: int = 4, width: int = 8
) -> bytes:
    """A LoRA file as the trainer writes one for the tiny model (diffusers names, fp32), with
    small random matrices: for tests of what is done with the file, not of what it does."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in TINY_LAYERS:
        tensors[f"{layer}.lora.down.weight"] = rng.standard_normal((rank, width), np.float32)
        tensors[f"{layer}.lora.up.weight"] = rng.standard_normal((width, rank), np.float32)
    return save(tensors, metadata={"format": "pt", **metadata})


class FakeTrainer:
    """Counts steps, checkpoints every ``checkpoint_every`` and writes a deterministic file:
    ``fake-lora …`` text, or with ``safetensors`` a LoRA file of random matrices in the
    trainer's format with ``spec.metadata`` (``diffusers_lora``)."""

    def __init__(
        self, *, step_hook: Callable[[int], None] | None = None, safetensors: bool = False
    ) -> None:
        self.step_hook = step_hook
        self.safetensors = safetensors
        self.specs: list[TrainingSpec] = []
        self.started_from: list[int] = []

    def train(
        self,
        spec: TrainingSpec,
        *,
        workdir: Path,
        report: Callable[[TrainingProgress], None],
        should_stop: Callable[[], bool],
        on_sample: Callable[[SampleRound], None] | None = None,
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
            plan = spec.sampling
            if on_sample is not None and plan is not None and step in plan.steps:
                on_sample(self._round(spec, plan, step, workdir))
            if step % spec.hyper.checkpoint_every == 0:
                checkpoint.write_text(str(step))
        out = workdir / "lora.safetensors"
        if self.safetensors:
            out.write_bytes(diffusers_lora(spec.metadata, seed=spec.hyper.seed))
            return out
        digest = hashlib.sha256(b"".join(s.image for s in spec.samples)).hexdigest()
        out.write_text(f"fake-lora {digest} {spec.hyper}")
        return out

    def _round(self, spec: TrainingSpec, plan: SamplePlan, step: int, workdir: Path) -> SampleRound:
        """Solid squares whose colour depends on the step, prompt and seed; at a checkpoint
        step a LoRA file of that step (random matrices seeded by the step)."""
        checkpoint = None
        if step in plan.checkpoint_steps:
            checkpoint = workdir / f"step-{step}.safetensors"
            if self.safetensors:
                checkpoint.write_bytes(diffusers_lora(spec.metadata, seed=spec.hyper.seed + step))
            else:
                checkpoint.write_text(f"fake-lora step {step} {spec.hyper}")
        samples = []
        for position, prompt in enumerate(plan.prompts):
            seed = plan.seed_of(position)
            r, g, b = hashlib.sha256(f"{step}|{prompt}|{seed}".encode()).digest()[:3]
            buffer = io.BytesIO()
            Image.new("RGB", (plan.resolution, plan.resolution), (r, g, b)).save(buffer, "PNG")
            samples.append(RenderedSample(position, prompt, seed, buffer.getvalue()))
        return SampleRound(step=step, loss=1.0 / step, samples=samples, checkpoint=checkpoint)


class FakeGenerator:
    """Solid images whose colour depends on the seed, prompt and LoRA scales."""

    def __init__(self) -> None:
        self.specs: list[GenerationSpec] = []
        self.forgotten: list[Path] = []  # what forget() was told, in order
        self.gate = threading.Event()
        self.gate.set()

    def forget(self, paths: Collection[Path]) -> None:
        self.forgotten.extend(paths)

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
