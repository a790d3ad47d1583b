"""One download with everything (issue 13 §3): ``GET …/trainings/{id}/export``, a ZIP of both
weight formats in fp16, ``manifest.json``, the sample sheet when there is one, ``receipt.json``
and a ``README.txt``.

Every entry is made before the first byte is sent (a refused export answers a clean 4xx), then
the ZIP is written entry by entry into the response (``chunks``): it is never spooled whole.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from loraforge.domain.entities import Principal
from loraforge.domain.weights import WeightsDtype, WeightsFormat, weights_filename
from loraforge.domain.work import Training
from loraforge.ports import UnitOfWorkFactory
from loraforge.services.trainings import TrainingService
from loraforge.services.weights import WeightsService

README = """\
loraforge LoRA {training_id}
Trigger word: {trigger}    Base model: {base}

Files
  {kohya}  kohya names, fp16: ComfyUI, AUTOMATIC1111/Forge
  {diffusers}  diffusers names, fp16: diffusers' load_lora_weights
  manifest.json   the exact images, captions and settings it trained with
  receipt.json    the signed provenance receipt ({receipt})

ComfyUI: copy {kohya} to ComfyUI/models/loras/ and pick it in a "LoraLoader" node.
AUTOMATIC1111/Forge: copy it to models/Lora/ and prompt <lora:{kohya_stem}:1> {trigger}.

diffusers:
    pipe.load_lora_weights(".", weight_name="{diffusers}")
    image = pipe("a photo of {trigger}").images[0]

Every weights file carries its receipt's sha256 in its metadata (loraforge.receipt_sha256);
docs/api.md ("Receipts") shows how to verify the receipt and the files offline.
"""

ExtraEntries = Callable[[Principal, Training], dict[str, bytes]]
"""More entries for a training's export (name -> bytes), e.g. its sample sheet."""


@dataclass(frozen=True)
class Export:
    filename: str
    entries: dict[str, bytes]

    def chunks(self) -> Iterator[bytes]:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in self.entries.items():
                archive.writestr(name, data)
                yield sink.take()
        yield sink.take()


class ExportService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        trainings: TrainingService,
        weights: WeightsService,
        extras: list[ExtraEntries] | None = None,
    ) -> None:
        self._uow = uow
        self._trainings = trainings
        self._weights = weights
        self._extras = extras or []

    def export(self, who: Principal, model_id: str, training_id: str) -> Export:
        """409 ``not_succeeded`` until the training succeeded; 410 ``erased`` once erased."""
        training = self._trainings.get(who, model_id, training_id)
        with self._weights.open_stored(training) as stream:
            data = stream.read()
        with self._uow() as uow:
            receipt = uow.training_receipts.get(training.id)
        receipt_sha256 = receipt.sha256 if receipt is not None else None
        entries: dict[str, bytes] = {}
        for weights_format in (WeightsFormat.KOHYA, WeightsFormat.DIFFUSERS):
            name = weights_filename(training.id, weights_format, WeightsDtype.FP16)
            entries[name] = self._weights.served(
                training, data, weights_format, WeightsDtype.FP16, receipt_sha256
            )
        entries["manifest.json"] = _json(training.manifest)
        if receipt is not None:
            entries["receipt.json"] = _json(receipt.document())
        for extra in self._extras:
            entries.update(extra(who, training))
        entries["README.txt"] = _readme(training, receipt_sha256).encode()
        return Export(filename=f"{training.id}.zip", entries=entries)


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"


def _readme(training: Training, receipt_sha256: str | None) -> str:
    kohya = weights_filename(training.id, WeightsFormat.KOHYA, WeightsDtype.FP16)
    return README.format(
        training_id=training.id,
        trigger=training.trigger_word,
        base=training.manifest["baseModel"],
        kohya=kohya,
        kohya_stem=kohya.removesuffix(".safetensors"),
        diffusers=weights_filename(training.id, WeightsFormat.DIFFUSERS, WeightsDtype.FP16),
        receipt=f"sha256 {receipt_sha256}" if receipt_sha256 else "none: trained before receipts",
    )


class _Sink:
    """An unseekable file for ``zipfile``: what was written since the last ``take``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data
