"""LoRA files converted with safetensors + numpy: names, precision, metadata, exactness."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load

from loraforge.adapters.ml.kohya_names import NotConvertible
from loraforge.adapters.ml.lora_files import (
    SafetensorsLoraFiles,
    read_metadata,
    serialize,
    stamp,
)
from loraforge.domain.ml import ModelFamily
from loraforge.domain.weights import WeightsDtype, WeightsFormat
from tests.ml_fakes import TINY_LAYERS, diffusers_lora

FILES = SafetensorsLoraFiles()
META = {"format": "pt", "modelspec.title": "t", "loraforge.format": "kohya"}


def convert(data: bytes, weights_format: WeightsFormat, dtype: WeightsDtype) -> bytes:
    return FILES.convert(
        data, weights_format=weights_format, dtype=dtype, family=ModelFamily.SD15, metadata=META
    )


def test_kohya_names_every_layer_with_its_pair_and_alpha() -> None:
    source = diffusers_lora({}, rank=4)
    stored = load(source)
    converted = load(convert(source, WeightsFormat.KOHYA, WeightsDtype.FP32))
    assert len(converted) == len(TINY_LAYERS) * 3
    name = "lora_unet_input_blocks_3_1_transformer_blocks_0_attn2_to_out_0"
    layer = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0"
    assert np.array_equal(
        converted[f"{name}.lora_down.weight"], stored[f"{layer}.lora.down.weight"]
    )
    assert np.array_equal(converted[f"{name}.lora_up.weight"], stored[f"{layer}.lora.up.weight"])
    assert converted[f"{name}.alpha"].shape == ()
    assert float(converted[f"{name}.alpha"]) == 4.0
    assert {k.split(".")[0] for k in converted} == {
        k.split(".")[0] for k in converted if k.endswith(".alpha")
    }
    assert all(k.startswith("lora_unet_") for k in converted)
    assert not any("down_blocks" in k or "up_blocks" in k for k in converted)


@pytest.mark.parametrize("weights_format", list(WeightsFormat))
def test_fp16_casts_every_tensor_and_nothing_else(weights_format: WeightsFormat) -> None:
    source = diffusers_lora({})
    full = load(convert(source, weights_format, WeightsDtype.FP32))
    half = load(convert(source, weights_format, WeightsDtype.FP16))
    assert half.keys() == full.keys()
    assert {a.dtype for a in half.values()} == {np.dtype(np.float16)}
    for key, array in half.items():
        assert np.array_equal(array, full[key].astype(np.float16))


def test_the_metadata_is_exactly_what_was_asked_and_the_bytes_repeat() -> None:
    source = diffusers_lora({"loraforge.training_id": "old"})
    converted = convert(source, WeightsFormat.KOHYA, WeightsDtype.FP16)
    assert read_metadata(converted) == META
    assert convert(source, WeightsFormat.KOHYA, WeightsDtype.FP16) == converted


def test_diffusers_fp32_conversion_keeps_every_tensor() -> None:
    source = diffusers_lora({})
    same = load(convert(source, WeightsFormat.DIFFUSERS, WeightsDtype.FP32))
    assert all(np.array_equal(same[k], v) for k, v in load(source).items())
    assert same.keys() == load(source).keys()


def test_read_metadata() -> None:
    assert FILES.metadata(diffusers_lora({"a": "b"})) == {"format": "pt", "a": "b"}
    header = b'{"x":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'
    assert read_metadata(struct.pack("<Q", len(header)) + header) == {}


@pytest.mark.parametrize(
    "data", [b"", b"fake-lora 1234", struct.pack("<Q", 2**40) + b"{}", struct.pack("<Q", 3) + b"{x"]
)
def test_what_is_not_a_safetensors_file_is_refused(data: bytes) -> None:
    with pytest.raises(NotConvertible):
        FILES.metadata(data)
    with pytest.raises(NotConvertible):
        convert(data, WeightsFormat.KOHYA, WeightsDtype.FP16)


def test_a_file_with_other_tensors_is_refused() -> None:
    from safetensors.numpy import save

    data = save({"unet.conv_in.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(NotConvertible):
        convert(data, WeightsFormat.KOHYA, WeightsDtype.FP32)


def test_stamp_adds_metadata_and_keeps_the_tensors(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    path.write_bytes(diffusers_lora({"kept": "1"}))
    before = load(path.read_bytes())
    stamp(path, {"modelspec.title": "t"})
    assert read_metadata(path.read_bytes()) == {"format": "pt", "kept": "1", "modelspec.title": "t"}
    after = load(path.read_bytes())
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[k], v) for k, v in before.items())
    assert [p.name for p in tmp_path.iterdir()] == ["lora.safetensors"]


def test_serialize_gives_the_same_bytes_every_time() -> None:
    """safetensors itself writes the metadata in a hash map's (random) order."""
    tensors = load(diffusers_lora({}))
    metadata = {f"key.{n}": f"välue {n}" for n in range(20)}
    files = {serialize(tensors, metadata) for _ in range(5)}
    assert len(files) == 1
    (data,) = files
    assert list(read_metadata(data)) == sorted(metadata)
    (length,) = struct.unpack("<Q", data[:8])
    assert (8 + length) % 8 == 0
    assert all(np.array_equal(load(data)[k], v) for k, v in tensors.items())
