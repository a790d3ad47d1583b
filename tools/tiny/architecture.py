"""The tiny model's shape: SD-1.5 components built from configs, sized for a 2-core CPU.

At 512 x 512 (64 x 64 latents) one UNet call with classifier-free guidance takes ~60 ms on two
cores, so 20 steps stay far below the 8 s budget; the autoencoder is the usual 8x one with thin
channels, and the text encoder is a 3-layer CLIP over our own ~600-token vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraforge.adapters.ml.tiny import TINY_RESOLUTION
from tools.tiny.tokenizer import END, MAX_LENGTH, START

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

TEXT_WIDTH = 64
LATENT_SCALE = 8  # the autoencoder halves the side three times

UNET_CONFIG: dict[str, Any] = {
    "sample_size": TINY_RESOLUTION // LATENT_SCALE,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64, 128),
    "layers_per_block": 1,
    # No attention at full latent resolution: it would cost O(pixels²) at 1536².
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": TEXT_WIDTH,
    "attention_head_dim": 4,  # diffusers' legacy name: the number of heads
    "norm_num_groups": 8,
}

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 32, 64, 64),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": TINY_RESOLUTION,
    "mid_block_add_attention": False,  # keeps decoding linear in pixels at any size
}

SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    # Linear betas reach (almost) zero signal at t=T, so sampling from pure noise matches
    # training even at twice the native side.
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    # With (almost) zero terminal SNR, predicting the noise says almost nothing about the
    # picture at high t; predicting v does (Lin et al. 2023), so colours come out right.
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",  # the first inference step is t=T, pure noise
    "steps_offset": 1,  # unused with trailing spacing; pipelines warn unless it is 1
    "clip_sample": False,
    "set_alpha_to_one": True,
}
"""DDIM (deterministic): the sigma-based solvers build their tables with ``np.array(tensor)``,
which numpy 2 flags with a DeprecationWarning under torch 2.13."""


@dataclass
class TinyParts:
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler


def text_encoder_config(vocab_size: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab_size,
        "hidden_size": TEXT_WIDTH,
        "intermediate_size": 4 * TEXT_WIDTH,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "max_position_embeddings": MAX_LENGTH,
        "projection_dim": TEXT_WIDTH,
        # The last two ids of our vocabulary (see tokenizer.write_clip_tokenizer).
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }


def new_parts(tokenizer_dir: Path, *, seed: int) -> TinyParts:
    """Freshly initialised components (seeded), the tokenizer read from ``tokenizer_dir``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    assert tokenizer.convert_tokens_to_ids([START, END]) == [len(tokenizer) - 2, len(tokenizer) - 1]
    torch.manual_seed(seed)
    return TinyParts(
        unet=UNet2DConditionModel(**UNET_CONFIG),
        vae=AutoencoderKL(**VAE_CONFIG),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text_encoder_config(len(tokenizer)))),
        tokenizer=tokenizer,
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
    )
