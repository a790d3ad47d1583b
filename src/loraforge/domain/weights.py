"""A trained LoRA as a file people load: its key format, its precision, and what its
safetensors ``__metadata__`` says about it. Pure: no ML library, no I/O.

The metadata speaks the two vocabularies the tools read: Stability AI's ModelSpec
(``modelspec.*``: architecture, title, trigger phrase, date, resolution) and kohya sd-scripts'
training keys (``ss_*``: network module, rank and alpha, base model version, steps, learning
rate, seed), which AUTOMATIC1111/Forge and ComfyUI's managers show; plus loraforge's own
(``loraforge.*``: which training, which manifest, which base model). Every value is a string,
as safetensors requires.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from loraforge.domain.ml import BaseModel, Hyperparameters, ModelFamily
from loraforge.domain.work import Training


class WeightsFormat(enum.StrEnum):
    """How a LoRA file names its tensors."""

    # diffusers/peft names (``unet.down_blocks.1.attentions.0….lora.down.weight``): what the
    # trainer writes and stores; diffusers' ``load_lora_weights`` reads it.
    DIFFUSERS = "diffusers"
    # kohya sd-scripts names in the original LDM (CompVis) UNet layout
    # (``lora_unet_input_blocks_4_1_…_to_q.lora_down.weight`` with ``.alpha``): what ComfyUI
    # and AUTOMATIC1111/Forge load.
    KOHYA = "kohya"


class WeightsDtype(enum.StrEnum):
    FP32 = "fp32"  # what the trainer stores
    FP16 = "fp16"  # half the size; what the tools load by default


MODELSPEC_VERSION = "1.0.0"
# ModelSpec's ``implementation``: the code whose names the file uses (sd-scripts' values).
IMPLEMENTATIONS = {
    WeightsFormat.DIFFUSERS: "diffusers",
    WeightsFormat.KOHYA: "https://github.com/Stability-AI/generative-models",
}
TINY_NOTE = (
    "Trained on loraforge's built-in tiny test model: this LoRA loads only into loraforge's "
    "tiny model, not into Stable Diffusion 1.5, SDXL or any other checkpoint."
)


# ModelSpec's ``architecture`` and kohya's ``ss_base_model_version`` of a LoRA on each base.
KINDS = {
    ModelFamily.SD15: ("stable-diffusion-v1/lora", "sd_v1"),
    ModelFamily.SDXL: ("stable-diffusion-xl-v1-base/lora", "sdxl_base_v1-0"),
    # The variant (3 medium / 3.5 large, FLUX dev / schnell) is not known from the family.
    ModelFamily.SD3: ("stable-diffusion-v3/lora", "sd3"),
    ModelFamily.FLUX: ("flux-1/lora", "flux1"),
}
TINY_KIND = ("loraforge-tiny/lora", "loraforge_tiny")


def kind(base: BaseModel) -> tuple[str, str]:
    """ModelSpec's architecture and kohya's base model version of a LoRA on ``base``."""
    return TINY_KIND if base.builtin else KINDS[base.family]


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """The manifest's sha256 over its canonical JSON (keys sorted, no spaces, UTF-8): the same
    manifest gives the same hash wherever it is computed, so a file's metadata and a receipt
    can name the exact images, captions and settings a training used."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def default_title(training: Training) -> str:
    """A file's title when its model is gone."""
    return f"loraforge LoRA {training.id}"


def lora_metadata(
    training: Training,
    base: BaseModel,
    *,
    title: str,
    weights_format: WeightsFormat = WeightsFormat.DIFFUSERS,
    receipt_sha256: str | None = None,
) -> dict[str, str]:
    """The ``__metadata__`` of ``training``'s LoRA on ``base`` in ``weights_format``.

    ``title`` is what the file calls itself (the model's name). ``modelspec.date`` is when the
    training started (its first attempt), so every file of one training says the same.
    ``receipt_sha256``: the hash of the training's provenance receipt, once there is one.
    """
    hyper = Hyperparameters(**training.manifest["hyperparameters"])
    started = training.started_at or training.created_at
    architecture, base_version = kind(base)
    metadata = {
        "format": "pt",  # the safetensors convention diffusers and transformers write
        "modelspec.sai_model_spec": MODELSPEC_VERSION,
        "modelspec.architecture": architecture,
        "modelspec.title": title,
        "modelspec.trigger_phrase": training.trigger_word,
        "modelspec.date": started.isoformat(timespec="seconds"),
        "modelspec.resolution": f"{hyper.resolution}x{hyper.resolution}",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(hyper.rank),
        "ss_network_alpha": str(hyper.lora_alpha),
        "ss_base_model_version": base_version,
        "ss_steps": str(hyper.steps),
        "ss_learning_rate": str(hyper.learning_rate),
        "ss_seed": str(hyper.seed),
        "loraforge.training_id": training.id,
        "loraforge.manifest_sha256": manifest_sha256(training.manifest),
        "loraforge.base_model_id": base.name,
    }
    if base.builtin:
        metadata["loraforge.note"] = TINY_NOTE
    return reformatted(metadata, weights_format, receipt_sha256=receipt_sha256)


def reformatted(
    metadata: Mapping[str, str],
    weights_format: WeightsFormat,
    *,
    receipt_sha256: str | None = None,
) -> dict[str, str]:
    """The same file's metadata for ``weights_format`` (and, given, its receipt's hash): every
    other value stays as it is, so each format of one training says the same about it."""
    changed = dict(metadata)
    changed["modelspec.implementation"] = IMPLEMENTATIONS[weights_format]
    changed["loraforge.format"] = weights_format.value
    if receipt_sha256 is not None:
        changed["loraforge.receipt_sha256"] = receipt_sha256
    return changed


def weights_filename(training_id: str, weights_format: WeightsFormat, dtype: WeightsDtype) -> str:
    """The download's file name: the stored file is ``<training>.safetensors`` as it always
    was; the others say their format and precision."""
    if (weights_format, dtype) == (WeightsFormat.DIFFUSERS, WeightsDtype.FP32):
        return f"{training_id}.safetensors"
    return f"{training_id}-{weights_format.value}-{dtype.value}.safetensors"


def is_loraforge_metadata(metadata: Mapping[str, str]) -> bool:
    """Whether a file's metadata is loraforge's (written when it was trained); files of
    trainings from before loraforge wrote metadata have none."""
    return "loraforge.training_id" in metadata
