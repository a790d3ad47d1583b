"""GET …/trainings/{id}/weights?format=diffusers|kohya&dtype=fp32|fp16 over HTTP: the stored
file as it always was by default, kohya names and fp16 made from it, metadata in every file.

The trainer here writes a real LoRA file of small random matrices in the trainer's format
(``ml_fakes.diffusers_lora``); tests/ml checks the real trainer's files in diffusers."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load
from sqlalchemy import text

from loraforge.adapters.ml.lora_files import read_metadata
from loraforge.bootstrap import build_worker
from loraforge.domain.entities import Principal
from loraforge.domain.ml import TrainingSpec
from loraforge.domain.weights import TINY_NOTE, manifest_sha256
from tests.conftest import Api
from tests.integration.work.conftest import Work
from tests.ml_fakes import TINY_LAYERS, FakeGenerator, FakeTrainer, diffusers_lora
from tests.receipts import unstamped


class MetadataFreeTrainer(FakeTrainer):
    """Writes LoRA files as trainers did before they wrote metadata."""

    def train(self, spec: TrainingSpec, **kwargs: Any) -> Path:
        path: Path = super().train(spec, **kwargs)
        path.write_bytes(diffusers_lora({}))
        return path


def working(api: Api, trainer: FakeTrainer) -> Work:
    worker = build_worker(api.container, trainer=trainer, generator=FakeGenerator(), owner="t")
    return Work(api=api, worker=worker, trainer=trainer, generator=FakeGenerator())


@pytest.fixture
def lora_work(api: Api) -> Work:
    return working(api, FakeTrainer(safetensors=True))


def trained(work: Work) -> tuple[str, str]:
    model_id = work.model_with_images(2)
    training_id = work.train(model_id, triggerWord="sks")
    assert work.run_jobs() == 1
    return model_id, training_id


def weights(work: Work, model_id: str, training_id: str, query: str = "") -> Any:
    url = f"/v1/models/{model_id}/trainings/{training_id}/weights{query}"
    return work.api.client.get(url, headers=work.api.headers)


def test_the_default_is_the_stored_file_with_its_receipt_hash(lora_work: Work) -> None:
    model_id, training_id = trained(lora_work)
    training = lora_work.api.container.trainings.find(_principal(lora_work), training_id)
    assert training.artifact_key is not None
    with lora_work.api.container.blobs.open(training.artifact_key) as stored:
        stored_bytes = stored.read()
    default = weights(lora_work, model_id, training_id)
    explicit = weights(lora_work, model_id, training_id, "?format=diffusers&dtype=fp32")
    assert default.status_code == explicit.status_code == 200
    assert default.content == explicit.content
    receipt = lora_work.api.client.get(
        f"/v1/models/{model_id}/trainings/{training_id}/receipt", headers=lora_work.api.headers
    ).json()
    # The stored LoRA with the receipt's hash in its metadata (docs/api.md, "Receipts"): the
    # same tensors, and without that key the file the receipt names.
    without, receipt_sha256 = unstamped(default.content)
    assert receipt_sha256 == receipt["sha256"]
    named = {(f["format"], f["dtype"]): f["sha256"] for f in receipt["receipt"]["weights"]["files"]}
    assert hashlib.sha256(without).hexdigest() == named["diffusers", "fp32"]
    assert receipt["receipt"]["weights"]["storedSha256"] == training.artifact_key
    assert _same_tensors(load(default.content), load(stored_bytes))
    assert default.headers["content-disposition"] == (
        f'attachment; filename="{training_id}.safetensors"'
    )


def test_the_stored_file_says_what_it_is(lora_work: Work) -> None:
    model_id, training_id = trained(lora_work)
    manifest = lora_work.training(model_id, training_id)["manifest"]
    hyper = manifest["hyperparameters"]
    metadata = read_metadata(weights(lora_work, model_id, training_id).content)
    receipt_sha256 = metadata.pop("loraforge.receipt_sha256")
    assert len(receipt_sha256) == 64
    started = lora_work.training(model_id, training_id)["startedAt"]
    assert metadata == {
        "format": "pt",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "loraforge-tiny/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": "m",  # the model's displayName
        "modelspec.trigger_phrase": "sks",
        "modelspec.date": metadata["modelspec.date"],
        "modelspec.resolution": f"{hyper['resolution']}x{hyper['resolution']}",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(hyper["rank"]),
        "ss_network_alpha": str(hyper["rank"]),
        "ss_base_model_version": "loraforge_tiny",
        "ss_steps": str(hyper["steps"]),
        "ss_learning_rate": str(hyper["learning_rate"]),
        "ss_seed": str(hyper["seed"]),
        "loraforge.training_id": training_id,
        "loraforge.manifest_sha256": manifest_sha256(manifest),
        "loraforge.base_model_id": "tiny",
        "loraforge.note": TINY_NOTE,
        "loraforge.format": "diffusers",
    }
    assert metadata["modelspec.date"][:19] == started[:19]  # to the second, in UTC


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_kohya_names_in_ldm_layout_with_alphas(lora_work: Work, dtype: str) -> None:
    model_id, training_id = trained(lora_work)
    stored = weights(lora_work, model_id, training_id).content
    answer = weights(lora_work, model_id, training_id, f"?format=kohya&dtype={dtype}")
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="{training_id}-kohya-{dtype}.safetensors"'
    )
    tensors = load(answer.content)
    assert len(tensors) == 3 * len(TINY_LAYERS)
    assert all(k.startswith("lora_unet_") for k in tensors)
    assert "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q.alpha" in tensors
    wanted = np.dtype(np.float16 if dtype == "fp16" else np.float32)
    assert {a.dtype for a in tensors.values()} == {wanted}
    expected = read_metadata(stored) | {
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
        "loraforge.format": "kohya",
    }
    assert read_metadata(answer.content) == expected
    again = weights(lora_work, model_id, training_id, f"?format=kohya&dtype={dtype}")
    assert again.content == answer.content


def test_diffusers_fp16(lora_work: Work) -> None:
    model_id, training_id = trained(lora_work)
    stored = load(weights(lora_work, model_id, training_id).content)
    answer = weights(lora_work, model_id, training_id, "?dtype=fp16")
    half = load(answer.content)
    assert half.keys() == stored.keys()
    assert all(half[k].dtype == np.float16 for k in half)
    assert all(np.array_equal(half[k], v.astype(np.float16)) for k, v in stored.items())
    assert read_metadata(answer.content)["loraforge.format"] == "diffusers"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?format=ckpt", "format"),
        ("?format=KOHYA", "format"),
        ("?dtype=fp64", "dtype"),
        ("?dtype=bf16&format=kohya", "dtype"),
        ("?format=", "format"),
    ],
)
def test_unknown_values_are_422_naming_the_field(lora_work: Work, query: str, field: str) -> None:
    model_id, training_id = trained(lora_work)
    answer = weights(lora_work, model_id, training_id, query)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field


def test_no_weights_before_success_and_none_for_other_accounts(lora_work: Work) -> None:
    model_id = lora_work.model_with_images(1)
    training_id = lora_work.train(model_id)
    queued = weights(lora_work, model_id, training_id, "?format=kohya&dtype=fp16")
    assert queued.status_code == 409
    assert queued.json()["error"]["code"] == "not_succeeded"
    lora_work.run_jobs()
    url = f"/v1/models/{model_id}/trainings/{training_id}/weights?format=kohya"
    other = lora_work.api.client.get(url, headers=lora_work.api.new_account())
    assert other.status_code == 404


def test_files_from_before_metadata_stay_as_they_were_and_convert_with_it(api: Api) -> None:
    work = working(api, MetadataFreeTrainer())
    model_id, training_id = trained(work)
    with api.container.uow.engine.begin() as conn:  # trained before receipts, too
        conn.execute(text("DELETE FROM training_receipts"))
    stored = weights(work, model_id, training_id).content
    assert stored == diffusers_lora({})
    assert read_metadata(stored) == {"format": "pt"}
    kohya = read_metadata(weights(work, model_id, training_id, "?format=kohya").content)
    assert kohya["loraforge.training_id"] == training_id
    assert kohya["modelspec.title"] == "m"
    assert kohya["modelspec.trigger_phrase"] == "sks"
    assert kohya["loraforge.format"] == "kohya"


def test_a_stored_file_that_is_no_lora_is_409_when_converted(api: Api) -> None:
    work = working(api, FakeTrainer())  # writes "fake-lora …" text
    model_id, training_id = trained(work)
    assert weights(work, model_id, training_id).content.startswith(b"fake-lora")
    answer = weights(work, model_id, training_id, "?format=kohya")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "weights_not_convertible"


def _principal(work: Work) -> Principal:
    return work.api.container.keys.authenticate(work.api.key)


def _same_tensors(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
