"""A tiny, randomly initialised BLIP captioning model built locally (no hub access).

Its language head is biased towards one word, so greedy decoding repeats ``WORD``: captions are
predictable although the weights are random.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORD = "cat"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", WORD, "dog", "red", "photo"]


def build_tiny_blip(folder: Path) -> Path:
    """Write model, tokenizer and image processor to ``folder`` as ``save_pretrained`` does."""
    import torch
    import transformers

    tf: Any = transformers  # the model classes are exported lazily and partly untyped
    tokenizer = tf.BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, bos_token="[DEC]")
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    config = tf.BlipConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 16,
        },
        text_config={
            "vocab_size": len(VOCAB),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "max_position_embeddings": 64,
            **special,
        },
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = tf.BlipForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[VOCAB.index(WORD)] = 100.0
    processor = tf.BlipProcessor(
        image_processor=tf.BlipImageProcessorPil(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
