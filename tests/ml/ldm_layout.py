"""The original (LDM / CompVis) names of a diffusers UNet's parameters, made the way diffusers'
``scripts/convert_diffusers_to_original_stable_diffusion.py`` and ``…_sdxl.py`` make them:
their conversion map, with the scripts' fixed shape (four or three blocks of two layers) read
from the UNet's config. Independent of loraforge's converter: ``test_lora_formats`` checks
this against diffusers' own LDM-to-diffusers conversion before it judges the converter by it.
"""

from __future__ import annotations

from typing import Any

import torch

# (stable-diffusion, HF Diffusers) prefixes, as in the scripts' ``unet_conversion_map``.
TOP = [
    ("time_embed.0.", "time_embedding.linear_1."),
    ("time_embed.2.", "time_embedding.linear_2."),
    ("input_blocks.0.0.", "conv_in."),
    ("out.0.", "conv_norm_out."),
    ("out.2.", "conv_out."),
    ("label_emb.0.0.", "add_embedding.linear_1."),
    ("label_emb.0.2.", "add_embedding.linear_2."),
]
RESNET = [
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("emb_layers.1", "time_emb_proj"),
    ("skip_connection", "conv_shortcut"),
]


def block_map(config: Any) -> list[tuple[str, str]]:
    """The scripts' ``unet_conversion_map_layer`` for this UNet's blocks."""
    per = config.layers_per_block
    count = len(config.down_block_types)
    pairs = [("middle_block.1.", "mid_block.attentions.0.")]
    pairs += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    for i, kind in enumerate(config.down_block_types):
        for j in range(per):
            at = (per + 1) * i + j + 1
            pairs.append((f"input_blocks.{at}.0.", f"down_blocks.{i}.resnets.{j}."))
            if kind.startswith("CrossAttn"):
                pairs.append((f"input_blocks.{at}.1.", f"down_blocks.{i}.attentions.{j}."))
        if i < count - 1:
            at = (per + 1) * (i + 1)
            pairs.append((f"input_blocks.{at}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
    for i, kind in enumerate(config.up_block_types):
        attention = kind.startswith("CrossAttn")
        for j in range(per + 1):
            at = (per + 1) * i + j
            pairs.append((f"output_blocks.{at}.0.", f"up_blocks.{i}.resnets.{j}."))
            if attention:
                pairs.append((f"output_blocks.{at}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < count - 1:
            at, inner = (per + 1) * i + per, 2 if attention else 1
            pairs.append((f"output_blocks.{at}.{inner}.", f"up_blocks.{i}.upsamplers.0."))
    return pairs


def ldm_name(key: str, config: Any) -> str:
    for sd, hf in TOP:
        if key.startswith(hf):
            return sd + key.removeprefix(hf)
    for sd, hf in block_map(config):
        if key.startswith(hf):
            inner = key.removeprefix(hf)
            if ".resnets." in hf:
                for sd_part, hf_part in RESNET:
                    inner = inner.replace(hf_part, sd_part)
            return sd + inner
    raise KeyError(key)


def ldm_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The UNet's parameters under their LDM names."""
    config = unet.config
    return {ldm_name(k, config): v for k, v in unet.state_dict().items()}
