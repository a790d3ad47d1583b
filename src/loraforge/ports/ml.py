"""Machine-learning ports: training, generation, the base-model catalog, captioning."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Protocol

from loraforge.domain.ml import (
    BaseModel,
    GenerationSpec,
    ModelFamily,
    TrainingProgress,
    TrainingSpec,
)
from loraforge.domain.samples import SampleRound
from loraforge.domain.weights import WeightsDtype, WeightsFormat


class Trainer(Protocol):
    """Trains a LoRA on a base model (diffusers + peft in the real adapter)."""

    def train(
        self,
        spec: TrainingSpec,
        *,
        workdir: Path,
        report: Callable[[TrainingProgress], None],
        should_stop: Callable[[], bool],
        on_sample: Callable[[SampleRound], None] | None = None,
    ) -> Path:
        """Train and return the path of the LoRA ``.safetensors`` (inside ``workdir``), in
        diffusers' key format, fp32, with ``spec.metadata`` in its ``__metadata__``.

        Checkpoints go to ``workdir`` every ``hyper.checkpoint_every`` steps; when ``workdir``
        already holds a checkpoint of the same spec, training resumes from it. ``report`` is
        called after every step; when ``should_stop()`` turns true the trainer raises
        ``TrainingStopped`` within one step.

        With ``spec.sampling``, after each of its steps the trainer renders one PNG per prompt
        (prompt ``n`` with seed ``sampling.seed_of(n)``) with the LoRA as it is at that step,
        writes that step's LoRA file at a checkpoint step (same format and metadata as the
        final file, ``ss_steps`` saying the step), and hands both to ``on_sample`` before
        training on. A resumed training samples only the steps after its resume point.
        """
        ...


class LoraFiles(Protocol):
    """Reads a stored LoRA file and writes it in the other formats people load."""

    def metadata(self, data: bytes) -> dict[str, str]:
        """The file's safetensors ``__metadata__`` (empty when it has none); ``ValueError``
        when ``data`` is not a safetensors file."""
        ...

    def convert(
        self,
        data: bytes,
        *,
        weights_format: WeightsFormat,
        dtype: WeightsDtype,
        family: ModelFamily,
        metadata: Mapping[str, str],
    ) -> bytes:
        """The LoRA in ``data`` (as the trainer writes it: diffusers names, fp32) with its
        tensors named as ``weights_format`` says, cast to ``dtype``, and ``metadata`` as its
        whole ``__metadata__``. The same arguments give the same bytes. ``ValueError`` when
        ``data`` is not a LoRA it can convert."""
        ...


class Generator(Protocol):
    """Generates images, keeping base pipelines resident and swapping LoRA adapters."""

    def generate(self, spec: GenerationSpec) -> list[bytes]:
        """Encoded images (``spec.output_format``), ``spec.num_images`` of them; the same spec
        and seed give the same bytes."""
        ...

    def forget(self, paths: Collection[Path]) -> None:
        """Unload every LoRA adapter loaded from one of these files (they were deleted: the
        training was erased). Never waits for a generation: one running unloads them when it
        ends."""
        ...


class BaseModelCatalog(Protocol):
    """The base models this installation can train on and generate with."""

    @property
    def default(self) -> str:
        """Name of the base model used when a model names none."""
        ...

    def list(self) -> list[BaseModel]: ...

    def get(self, name: str) -> BaseModel:
        """Raise ``KeyError`` for an unknown name."""
        ...


class Captioner(Protocol):
    """Describes an image in words: a local image-to-text model (BLIP, Florence-2, a chat
    vision-language model) in the real adapter. Caption jobs call it on a worker, never in a
    request."""

    def caption(self, image: bytes) -> str:
        """A caption of the encoded image; the same bytes give the same text.

        ``image`` is one of the core's own derived variants (already decoded, checked and
        re-encoded), never raw client bytes.
        """
        ...
