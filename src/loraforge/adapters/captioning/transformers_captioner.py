"""A ``Captioner`` over a local transformers image-to-text model.

The folder is what ``save_pretrained`` writes for a model and its processor. Three kinds work,
told apart by the ``prompt`` and the processor:

- no prompt: the model captions the picture alone (BLIP, e.g. a copy of
  Salesforce/blip-image-captioning-base);
- a prompt, and a processor without a chat template: the prompt goes in as text beside the
  picture (Florence-2 and its task tokens, e.g. ``<MORE_DETAILED_CAPTION>``);
- a prompt, and a processor with a chat template: the prompt is a user message holding the
  picture (chat vision-language models such as SmolVLM), and the answer is the caption.

Nothing is downloaded (``local_files_only``). torch and transformers are imported on the first
caption, so a process that never captions never pays for them; the model then stays loaded.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from PIL import Image


class TransformersCaptioner:
    def __init__(
        self, model_dir: Path, *, prompt: str | None = None, max_new_tokens: int = 30
    ) -> None:
        self._model_dir = model_dir
        self._prompt = prompt
        self._max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one caption at a time: bounds CPU/GPU memory
        self._loaded: tuple[Any, Any, Any] | None = None

    def caption(self, image: bytes) -> str:
        with self._lock:
            torch, processor, model = self._load()
            with Image.open(io.BytesIO(image)) as opened:
                picture = opened.convert("RGB")
            inputs = self._inputs(processor, picture).to(model.device)
            with torch.inference_mode():
                output = model.generate(
                    **inputs, max_new_tokens=self._max_new_tokens, do_sample=False
                )
            tokens = output[0]
            prompt = inputs.get("input_ids")
            # A decoder-only model answers after the prompt it was given: keep the answer.
            if prompt is not None and torch.equal(tokens[: prompt.shape[1]], prompt[0]):
                tokens = tokens[prompt.shape[1] :]
            text: str = processor.decode(tokens, skip_special_tokens=True)
            return text.strip()

    def _inputs(self, processor: Any, picture: Image.Image) -> Any:
        if self._prompt is None:
            return processor(images=picture, return_tensors="pt")
        if getattr(processor, "chat_template", None):
            message = [
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": self._prompt}],
                }
            ]
            text = processor.apply_chat_template(message, add_generation_prompt=True)
            return processor(images=[picture], text=text, return_tensors="pt")
        return processor(images=picture, text=self._prompt, return_tensors="pt")

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
