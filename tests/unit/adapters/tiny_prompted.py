"""Tiny, randomly initialised prompt-based captioning models built locally (no hub access):
a Florence-2 (encoder-decoder; the prompt is a task token such as ``<CAPTION>``) and a chat
vision-language model (decoder-only, with a chat template, as SmolVLM; built as a LLaVA, whose
processor needs nothing beyond transformers).

Each is wired so that greedy decoding repeats ``WORD`` whatever the picture (a constant final
hidden state, and ``WORD``'s output row aligned with it): captions are predictable although
the weights are random.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORD = "cat"
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]


def build_tiny_florence2(folder: Path) -> Path:
    """Write a Florence-2 model and processor to ``folder`` as ``save_pretrained`` does."""
    import torch
    import transformers

    tf: Any = transformers  # the model classes are exported lazily and partly untyped
    prompt_words = ["What", "does", "the", "image", "describe?", "Describe", "in", "detail"]
    tokenizer, vocab = _word_tokenizer([*prompt_words, WORD, "dog"])
    size = 64  # four stages of stride 4, 2, 2, 2: a 2x2 grid of image tokens, plus one
    image_processor = tf.CLIPImageProcessorPil(
        size={"height": size, "width": size}, do_center_crop=False
    )
    image_processor.image_seq_length = (size // 32) ** 2 + 1
    processor = tf.Florence2Processor(image_processor=image_processor, tokenizer=tokenizer)
    ids = _special_ids(tokenizer)
    config = tf.Florence2Config(
        vision_config={
            "depths": [1, 1, 1, 1],
            "embed_dim": [8, 16, 16, 32],
            "num_heads": [1, 2, 2, 4],
            "num_groups": [1, 2, 2, 4],
            "window_size": 2,
            "projection_dim": 32,
            "drop_path_rate": 0.0,
        },
        text_config={
            "vocab_size": len(tokenizer),
            "d_model": 32,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 37,
            "decoder_ffn_dim": 37,
            "max_position_embeddings": 64,
            "decoder_start_token_id": ids["eos_token_id"],
            "forced_bos_token_id": None,
            "forced_eos_token_id": None,
            **ids,
        },
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(0)
    model = tf.Florence2ForConditionalGeneration(config).eval()
    with torch.no_grad():
        text = model.model.language_model
        last = text.decoder.layers[-1].final_layer_norm
        last.weight.zero_()
        last.bias.fill_(1.0)  # every decoder state is all ones...
        text.shared.weight[vocab[WORD]] = 10.0  # ...so WORD (the tied output row) wins
    return _save(folder, model, processor)


def build_tiny_chat_vlm(folder: Path) -> Path:
    """Write a chat vision-language model and its processor (with a chat template)."""
    import torch
    import transformers

    tf: Any = transformers
    prompt_words = ["USER:", "ASSISTANT:", "Describe", "this", "image."]
    tokenizer, vocab = _word_tokenizer([*prompt_words, WORD, "dog"])
    chat_template = (
        "{% for m in messages %}USER: {% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}"
        "{% endfor %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    size, patch = 32, 16
    processor = tf.LlavaProcessor(
        image_processor=tf.CLIPImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        ),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=chat_template,
        num_additional_image_tokens=1,
    )
    config = tf.LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": size,
            "patch_size": patch,
            "projection_dim": 32,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128,
            "mlp_bias": True,
            **_special_ids(tokenizer),
        },
        image_token_id=tokenizer.image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = tf.LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        down = model.model.language_model.layers[-1].mlp.down_proj
        down.weight.zero_()
        down.bias.fill_(100.0)  # the residual stream ends near a constant vector...
        model.lm_head.weight[vocab[WORD]] = 1.0  # ...so WORD's logit dwarfs the others
    return _save(folder, model, processor)


def _word_tokenizer(words: list[str]) -> tuple[Any, dict[str, int]]:
    """A whitespace word-level fast tokenizer whose image token is ``<image>``."""
    import tokenizers
    import transformers

    vocab = {w: i for i, w in enumerate([*SPECIAL, *words])}
    model = tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>")
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    backend.decoder = tokenizers.decoders.WordPiece(prefix="##")  # joins words with spaces
    tf: Any = transformers
    tokenizer = tf.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    return tokenizer, vocab


def _special_ids(tokenizer: Any) -> dict[str, int]:
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _save(folder: Path, model: Any, processor: Any) -> Path:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
