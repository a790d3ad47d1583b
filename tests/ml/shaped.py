"""Tiny pipelines in the block layouts of SD 1.5 and SDXL, built from configs here: what the
real ones have (four or three blocks of two layers, SDXL's two text encoders, several
transformer layers per attention block), at a size that runs on a CPU in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from loraforge.adapters.ml.tiny import WEIGHTS_DIR
from loraforge.domain.ml import BaseModel, ModelFamily


def text_config(vocab: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
    )


def sd15_shaped(folder: Path) -> BaseModel:
    """SD 1.5's UNet layout (three cross-attention down blocks and a plain one, two layers
    each; up blocks the mirror) with the tiny model's text encoder, VAE and scheduler."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=4,
        norm_num_groups=8,
        cross_attention_dim=64,  # the tiny text encoder's width
    )
    pipe = StableDiffusionPipeline.from_pretrained(
        str(WEIGHTS_DIR),
        unet=unet,
        dtype=torch.float32,
        safety_checker=None,
        requires_safety_checker=False,
        local_files_only=True,
    )
    pipe.save_pretrained(str(folder))
    return BaseModel(name="tiny-sd15", family=ModelFamily.SD15, resolution=64, path=folder)


def sdxl_shaped(folder: Path) -> BaseModel:
    """SDXL's UNet layout (a plain down block, then two cross-attention ones, two layers each,
    the last with two transformer layers per attention block, as SDXL's have ten) with two
    text encoders and size/crop conditioning."""
    torch.manual_seed(0)
    unet = xl_unet(
        sample_size=16,
        block_out_channels=(16, 32, 32),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2),
        attention_head_dim=(2, 4, 4),
    )
    return saved_xl(unet, folder, name="tiny-sdxl")


def xl_unet(**layout: Any) -> UNet2DConditionModel:
    """A UNet of ``layout`` (blocks, widths, layers) conditioned as SDXL's is."""
    return UNet2DConditionModel(
        **layout,
        use_linear_projection=True,
        norm_num_groups=8,
        cross_attention_dim=64,  # both encoders' widths, concatenated
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids + pooled text
    )


def saved_xl(unet: UNet2DConditionModel, folder: Path, *, name: str) -> BaseModel:
    """An SDXL pipeline around ``unet`` (two small text encoders, a small VAE), saved to
    ``folder`` as a base model that trains at 64 px."""
    tokenizer = CLIPTokenizer.from_pretrained(str(WEIGHTS_DIR / "tokenizer"))
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(),
        text_encoder=CLIPTextModel(text_config(len(tokenizer))),
        text_encoder_2=CLIPTextModelWithProjection(text_config(len(tokenizer))),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(timestep_spacing="trailing", clip_sample=False, steps_offset=1),
    )
    pipe.save_pretrained(str(folder))
    return BaseModel(name=name, family=ModelFamily.SDXL, resolution=64, path=folder)


def tiny_vae() -> AutoencoderKL:
    """A two-block VAE (latents at half the picture's side)."""
    return AutoencoderKL(
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
    )
