"""kohya sd-scripts names for the layers of a diffusers LoRA, in the original LDM (CompVis) UNet
layout. Pure string work: no ML library.

A diffusers LoRA names a UNet layer by the diffusers module path
(``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q``); the original Stable Diffusion
code, whose state-dict names ComfyUI and AUTOMATIC1111/Forge match LoRA keys against, numbers
its blocks flat (``input_blocks.4.1.transformer_blocks.0.attn1.to_q``). kohya's key is
``lora_unet_`` + that LDM path with dots as underscores. The renumbering is the one of diffusers'
``scripts/convert_diffusers_to_original_stable_diffusion.py`` (and ``…_sdxl.py``), with the
layers per block (2 in SD 1.5 and SDXL, 1 in the tiny models) as a parameter:

- ``down_blocks.i.attentions.j`` → ``input_blocks.{(L+1)·i + j + 1}.1`` (block 0 of
  ``input_blocks`` is ``conv_in``; each down block adds L layers and a downsampler);
- ``mid_block.attentions.0`` → ``middle_block.1`` (between the two resnets);
- ``up_blocks.i.attentions.j`` → ``output_blocks.{(L+1)·i + j}.1`` (up blocks have L+1 layers).

Inside an attention block (``transformer_blocks.k.attn1.to_q``, ``proj_in`` …) the names are
the same in both layouts. loraforge's trainer puts its LoRA on the attention projections only
(``to_q``, ``to_k``, ``to_v``, ``to_out.0``), so those blocks are what this maps; any other UNet
layer is refused rather than guessed. Text-encoder layers keep their transformers names:
``lora_te_`` (SD 1.5) or ``lora_te1_`` / ``lora_te2_`` (SDXL's two encoders) + the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

UNET = "unet"
TEXT_ENCODERS = {"text_encoder": ("lora_te", "lora_te1"), "text_encoder_2": ("lora_te2",)}
_DOWN = re.compile(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)")
_MID = re.compile(r"mid_block\.attentions\.0\.(.+)")
_UP = re.compile(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)")


class NotConvertible(ValueError):
    """A layer or a set of layers that has no kohya/LDM name here."""


def ldm_unet_path(path: str, layers_per_block: int) -> str:
    """The LDM path of the diffusers UNet module ``path`` (an attention block's layer)."""
    if down := _DOWN.fullmatch(path):
        block, layer, rest = int(down[1]), int(down[2]), down[3]
        if layer >= layers_per_block:
            raise NotConvertible(f"{path}: a down block has {layers_per_block} layers")
        return f"input_blocks.{(layers_per_block + 1) * block + layer + 1}.1.{rest}"
    if mid := _MID.fullmatch(path):
        return f"middle_block.1.{mid[1]}"
    if up := _UP.fullmatch(path):
        block, layer, rest = int(up[1]), int(up[2]), up[3]
        if layer > layers_per_block:
            raise NotConvertible(f"{path}: an up block has {layers_per_block + 1} layers")
        return f"output_blocks.{(layers_per_block + 1) * block + layer}.1.{rest}"
    raise NotConvertible(f"{path}: only the UNet's attention blocks have LDM names here")


def layers_per_block(unet_paths: Iterable[str]) -> int | None:
    """The UNet's layers per block, read off a LoRA's own UNet module paths: down blocks number
    their attentions 0…L-1, up blocks 0…L. Every block must show all of its layers (the
    trainer adapts every attention block), so a partial set is refused rather than misread.
    None when no down or up block is among them (nothing then depends on it)."""
    down: dict[int, set[int]] = {}
    up: dict[int, set[int]] = {}
    for path in unet_paths:
        if match := _DOWN.fullmatch(path):
            down.setdefault(int(match[1]), set()).add(int(match[2]))
        elif match := _UP.fullmatch(path):
            up.setdefault(int(match[1]), set()).add(int(match[2]))
    counts = {len(layers) for layers in down.values()} | {len(layers) - 1 for layers in up.values()}
    complete = all(layers == set(range(len(layers))) for layers in [*down.values(), *up.values()])
    if len(counts) > 1 or not complete:
        raise NotConvertible("the LoRA does not cover every layer of its attention blocks")
    return counts.pop() if counts else None


def kohya_names(paths: Iterable[str], *, sdxl: bool) -> dict[str, str]:
    """kohya's layer name for each diffusers module path (``unet.<path>``,
    ``text_encoder.<path>``, ``text_encoder_2.<path>``); ``sdxl`` numbers the text encoders."""
    paths = list(paths)
    unet_paths = [p.removeprefix(f"{UNET}.") for p in paths if p.startswith(f"{UNET}.")]
    blocks = layers_per_block(unet_paths)
    names: dict[str, str] = {}
    for path in paths:
        component, _, inner = path.partition(".")
        if component == UNET:
            # layers_per_block is None only when no down/up block needs it (mid block only).
            ldm = ldm_unet_path(inner, blocks or 1)
            names[path] = "lora_unet_" + ldm.replace(".", "_")
        elif component in TEXT_ENCODERS:
            prefixes = TEXT_ENCODERS[component]
            prefix = prefixes[-1] if sdxl else prefixes[0]
            names[path] = f"{prefix}_" + inner.replace(".", "_")
        else:
            raise NotConvertible(f"{path}: not a UNet or text-encoder layer")
    return names
