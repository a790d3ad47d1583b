"""A CLIP-format tokenizer learnt from the caption corpus by our own code.

CLIP's tokenizer is byte-level BPE whose vocabulary starts with all 256 byte symbols, alone and
with the end-of-word marker ``</w>``; learnt merges follow, then the two special tokens. Building
ours the same way means every word, a trigger like "FJA90AB" included, tokenizes without unknown
tokens, and stock ``CLIPTokenizer`` reads the files (vocab.json, merges.txt).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

START, END = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77  # what Stable Diffusion pipelines pad prompts to
_EOW = "</w>"
# CLIP's own pre-tokenizer: words, single digits, runs of punctuation.
_WORDS = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"""
    r"""|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


def learn_merges(corpus: Iterable[str], *, vocab_size: int) -> list[tuple[str, str]]:
    """BPE merges over byte-level symbols, trained the way CLIP's tokenizer applies them."""
    tokenizer = Tokenizer(BPE(end_of_word_suffix=_EOW))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_WORDS), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix=_EOW,
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return [_as_pair(merge) for merge in model["merges"]]


def _as_pair(merge: str | list[str]) -> tuple[str, str]:
    left, right = merge.split(" ") if isinstance(merge, str) else merge
    return left, right


def write_clip_tokenizer(merges: list[tuple[str, str]], out_dir: Path) -> None:
    """Write vocab.json, merges.txt and the configs ``CLIPTokenizer.from_pretrained`` reads."""
    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for token in [*symbols, *(s + _EOW for s in symbols), *("".join(m) for m in merges)]:
        vocab.setdefault(token, len(vocab))
    vocab[START] = len(vocab)
    vocab[END] = len(vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (out_dir / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "bos_token": START,
        "eos_token": END,
        "unk_token": END,
        "pad_token": END,
        "do_lower_case": True,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": START, "eos_token": END, "unk_token": END, "pad_token": END}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP ``bytes_to_unicode``: printable bytes as themselves, the rest shifted past 255,
    in CLIP's vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    codes = list(printable)
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shifted)
            shifted += 1
    return [chr(code) for code in codes]


def vocab_size(out_dir: Path) -> int:
    return len(json.loads((out_dir / "vocab.json").read_text(encoding="utf-8")))
