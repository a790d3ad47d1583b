"""Tiny pipelines in the block layouts of SD 1.5 and SDXL, built from configs here: what the
real ones have (four or three blocks of two layers, SDXL's two text encoders, several
transformer layers per attention block), at a size that runs on a CPU in seconds; and tiny SD3-
and FLUX-shaped ones built as diffusers' own pipeline tests build them (their T5 tokenizer made
here: nothing comes from a hub)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers.processors import TemplateProcessing
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

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


# --- the flow-matching families, as diffusers' own pipeline tests build them ------------------

T5_WORDS = ("a", "the", "photo", "of", "square", "circle", "red", "blue", "striped", "sks")


def t5_tokenizer() -> T5TokenizerFast:
    """A T5 tokenizer built here (no hub): a unigram vocabulary of a few words and the
    letters and digits, ``</s>`` appended as T5's is."""
    letters = [(c, -5.0) for c in string.ascii_lowercase + string.digits + ",.▁"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("▁" + word, -1.0) for word in T5_WORDS] + letters
    model = Tokenizer(models.Unigram(vocab, unk_id=2))
    model.normalizer = normalizers.Lowercase()
    model.pre_tokenizer = pre_tokenizers.Metaspace()
    model.decoder = decoders.Metaspace()
    model.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=model, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def t5_encoder(vocab: int) -> T5EncoderModel:
    """The size of hf-internal-testing/tiny-random-t5 (what diffusers' tests load)."""
    config = T5Config(
        vocab_size=vocab,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=5,
        num_heads=4,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config)


def clip_config() -> CLIPTextConfig:
    """diffusers' tests' tiny CLIP text encoder, over the tiny model's tokenizer."""
    tokenizer = CLIPTokenizer.from_pretrained(str(WEIGHTS_DIR / "tokenizer"))
    return text_config(len(tokenizer))


def flow_vae(latent_channels: int) -> AutoencoderKL:
    """diffusers' tests' tiny VAE with a second block: latents at half the picture's side."""
    return AutoencoderKL(
        block_out_channels=(4, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def flux_shaped(folder: Path, *, guidance: bool = True) -> Path:
    """A FLUX.1-shaped pipeline (one double- and one single-stream block; ``guidance``: the
    dev variant's guidance embedding, else schnell's) saved to ``folder``."""
    tokenizer = CLIPTokenizer.from_pretrained(str(WEIGHTS_DIR / "tokenizer"))
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
        guidance_embeds=guidance,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(clip_config())
    t5 = t5_tokenizer()
    torch.manual_seed(0)
    text_encoder_2 = t5_encoder(len(t5))
    torch.manual_seed(0)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=flow_vae(latent_channels=1),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5,
        transformer=transformer,
    )
    pipe.save_pretrained(str(folder))
    return folder


def sd3_shaped(folder: Path) -> Path:
    """An SD3-shaped pipeline (one joint block, two CLIPs and a T5) saved to ``folder``; with
    SD3's 16 latent channels (diffusers' test has 4), which its inpainting pipeline requires."""
    tokenizer = CLIPTokenizer.from_pretrained(str(WEIGHTS_DIR / "tokenizer"))
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=1,
        in_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=16,
    )
    encoders = []
    for _ in range(2):
        torch.manual_seed(0)
        encoders.append(CLIPTextModelWithProjection(clip_config()))
    t5 = t5_tokenizer()
    torch.manual_seed(0)
    text_encoder_3 = t5_encoder(len(t5))
    torch.manual_seed(0)
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=flow_vae(latent_channels=16),
        text_encoder=encoders[0],
        tokenizer=tokenizer,
        text_encoder_2=encoders[1],
        tokenizer_2=tokenizer,
        text_encoder_3=text_encoder_3,
        tokenizer_3=t5,
        transformer=transformer,
    )
    pipe.save_pretrained(str(folder))
    return folder
