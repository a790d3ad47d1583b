"""A ``Captioner`` over a local transformers image-to-text model (BLIP-style).

The folder is what ``save_pretrained`` writes for a model and its processor, for example a copy
of Salesforce/blip-image-captioning-base. Nothing is downloaded (``local_files_only``). torch and
transformers are imported on the first caption, so a server that never captions never pays for
them; the model then stays loaded.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from PIL import Image


class TransformersCaptioner:
    def __init__(self, model_dir: Path, *, max_new_tokens: int = 30) -> None:
        self._model_dir = model_dir
        self._max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one caption at a time: bounds CPU/GPU memory
        self._loaded: tuple[Any, Any, Any] | None = None

    def caption(self, image: bytes) -> str:
        with self._lock:
            torch, processor, model = self._load()
            with Image.open(io.BytesIO(image)) as opened:
                picture = opened.convert("RGB")
            inputs = processor(images=picture, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                output = model.generate(
                    **inputs, max_new_tokens=self._max_new_tokens, do_sample=False
                )
            text: str = processor.decode(output[0], skip_special_tokens=True)
            return text.strip()

    def _load(self) -> tuple[Any, Any, Any]:
        if self._loaded is None:
            import torch
            import transformers

            library: Any = transformers  # its from_pretrained factories are untyped
            if not self._model_dir.is_dir():
                raise FileNotFoundError(f"captioning model folder {self._model_dir} not found")
            processor = library.AutoProcessor.from_pretrained(
                self._model_dir, local_files_only=True
            )
            model = library.AutoModelForImageTextToText.from_pretrained(
                self._model_dir, local_files_only=True
            )
            device = "cuda" if torch.cuda.is_available() else "cpu"
            self._loaded = (torch, processor, model.to(device).eval())
        return self._loaded
