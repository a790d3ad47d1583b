"""kohya names in the original LDM UNet layout, checked against the block numbers the original
SD 1.5 and SDXL checkpoints use (their ``model.diffusion_model.*`` keys)."""

from __future__ import annotations

import pytest

from loraforge.adapters.ml.kohya_names import (
    NotConvertible,
    kohya_names,
    layers_per_block,
    ldm_unet_path,
)

ATTN = "transformer_blocks.0.attn1.to_q"


def attention_paths(down: dict[int, int], up: dict[int, int], *, mid: bool = True) -> list[str]:
    """``unet.`` paths of every attention block: ``{block: layers}`` for down and up blocks."""
    paths = [f"down_blocks.{b}.attentions.{j}" for b, n in down.items() for j in range(n)]
    paths += [f"up_blocks.{b}.attentions.{j}" for b, n in up.items() for j in range(n)]
    if mid:
        paths.append("mid_block.attentions.0")
    return [f"unet.{p}.{ATTN}" for p in paths]


# SD 1.5: three cross-attention down blocks and up blocks 1-3, two layers per block.
SD15 = attention_paths({0: 2, 1: 2, 2: 2}, {1: 3, 2: 3, 3: 3})
# SDXL: down blocks 1-2 and up blocks 0-1 have attention, two layers per block.
SDXL = attention_paths({1: 2, 2: 2}, {0: 3, 1: 3})


@pytest.mark.parametrize(
    ("path", "ldm"),
    [
        ("down_blocks.0.attentions.0", "input_blocks.1.1"),
        ("down_blocks.0.attentions.1", "input_blocks.2.1"),
        ("down_blocks.1.attentions.0", "input_blocks.4.1"),
        ("down_blocks.2.attentions.1", "input_blocks.8.1"),
        ("mid_block.attentions.0", "middle_block.1"),
        ("up_blocks.1.attentions.0", "output_blocks.3.1"),
        ("up_blocks.2.attentions.1", "output_blocks.7.1"),
        ("up_blocks.3.attentions.2", "output_blocks.11.1"),
    ],
)
def test_sd15_blocks_get_the_original_numbers(path: str, ldm: str) -> None:
    assert ldm_unet_path(f"{path}.{ATTN}", 2) == f"{ldm}.{ATTN}"


def test_sd15_kohya_names() -> None:
    names = kohya_names(SD15, sdxl=False)
    assert len(set(names.values())) == len(SD15) == 16
    assert names[f"unet.down_blocks.1.attentions.0.{ATTN}"] == (
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    )
    blocks = sorted({name.split("_transformer")[0] for name in names.values()})
    assert blocks == sorted(
        [f"lora_unet_input_blocks_{n}_1" for n in (1, 2, 4, 5, 7, 8)]
        + ["lora_unet_middle_block_1"]
        + [f"lora_unet_output_blocks_{n}_1" for n in range(3, 12)]
    )


def test_sdxl_kohya_names() -> None:
    names = kohya_names(SDXL, sdxl=True)
    assert names[f"unet.down_blocks.1.attentions.0.{ATTN}"] == (
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    )
    blocks = sorted({name.split("_transformer")[0] for name in names.values()})
    assert blocks == sorted(
        [f"lora_unet_input_blocks_{n}_1" for n in (4, 5, 7, 8)]
        + ["lora_unet_middle_block_1"]
        + [f"lora_unet_output_blocks_{n}_1" for n in range(6)]
    )


def test_layers_inside_an_attention_block_keep_their_names() -> None:
    deep = "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_out.0"
    assert ldm_unet_path(deep, 2) == "input_blocks.8.1.transformer_blocks.9.attn2.to_out.0"
    first = deep.replace("attentions.1", "attentions.0")
    assert kohya_names([f"unet.{first}", f"unet.{deep}"], sdxl=True) == {
        f"unet.{first}": "lora_unet_input_blocks_7_1_transformer_blocks_9_attn2_to_out_0",
        f"unet.{deep}": "lora_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_out_0",
    }


def test_layers_per_block_is_read_off_the_lora() -> None:
    assert layers_per_block([p.removeprefix("unet.") for p in SD15]) == 2
    assert layers_per_block([p.removeprefix("unet.") for p in SDXL]) == 2
    tiny = attention_paths({1: 1, 2: 1}, {0: 2, 1: 2})
    assert layers_per_block([p.removeprefix("unet.") for p in tiny]) == 1
    assert kohya_names(tiny, sdxl=False)[f"unet.up_blocks.1.attentions.1.{ATTN}"] == (
        f"lora_unet_output_blocks_3_1_{ATTN.replace('.', '_')}"
    )
    assert layers_per_block([f"mid_block.attentions.0.{ATTN}"]) is None


@pytest.mark.parametrize(
    "paths",
    [
        # only the first layer of each block: one layer per block down, none up
        attention_paths({0: 1, 1: 1}, {1: 1, 2: 1}),
        # a block that misses a layer
        attention_paths({0: 2, 1: 1}, {1: 3}),
        # down and up disagree
        attention_paths({0: 2}, {1: 2}),
    ],
)
def test_a_lora_that_does_not_cover_its_blocks_is_refused(paths: list[str]) -> None:
    with pytest.raises(NotConvertible):
        kohya_names(paths, sdxl=False)


@pytest.mark.parametrize(
    "path",
    [
        "unet.down_blocks.0.resnets.0.conv1",
        "unet.conv_in",
        "unet.up_blocks.0.upsamplers.0.conv",
        "vae.encoder.conv_in",
    ],
)
def test_layers_outside_the_attention_blocks_are_refused(path: str) -> None:
    with pytest.raises(NotConvertible):
        kohya_names([path], sdxl=False)


def test_text_encoder_layers() -> None:
    q = "text_model.encoder.layers.0.self_attn.q_proj"
    assert kohya_names([f"text_encoder.{q}"], sdxl=False) == {
        f"text_encoder.{q}": "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    }
    assert kohya_names([f"text_encoder.{q}", f"text_encoder_2.{q}"], sdxl=True) == {
        f"text_encoder.{q}": "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
        f"text_encoder_2.{q}": "lora_te2_text_model_encoder_layers_0_self_attn_q_proj",
    }
