"""Samples, checkpoints and the sample sheet of a training over HTTP (issue 13 §2).

The trainer is ``FakeTrainer``: solid sample squares and LoRA files of random matrices per
checkpoint step; tests/ml checks what the real trainer renders."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image
from safetensors.numpy import load

from loraforge.adapters.imaging.sample_sheet import CELL, LABEL_HEIGHT, sheet_size
from loraforge.bootstrap import build_worker
from loraforge.domain.errors import NotFound
from tests.conftest import Api
from tests.integration.work.conftest import Work
from tests.ml_fakes import FakeGenerator, FakeTrainer

PROMPTS = ["SKS on a beach", "SKS in the snow"]


@pytest.fixture
def work(api: Api) -> Work:
    trainer, generator = FakeTrainer(safetensors=True), FakeGenerator()
    worker = build_worker(api.container, trainer=trainer, generator=generator, owner="t")
    return Work(api=api, worker=worker, trainer=trainer, generator=generator)


def trained(work: Work, **body: Any) -> tuple[str, str]:
    model_id = work.model_with_images(2)
    training_id = work.train(
        model_id, triggerWord="SKS", classWord="dog", samplePrompts=PROMPTS, **body
    )
    assert work.run_jobs() == 1
    return model_id, training_id


def get(work: Work, url: str) -> Any:
    return work.api.client.get(url, headers=work.api.headers)


def test_samples_are_listed_with_links_and_kept_out_of_outputs(work: Work) -> None:
    model_id, training_id = trained(work)
    base = f"/v1/models/{model_id}/trainings/{training_id}"
    answer = get(work, f"{base}/samples")
    assert answer.status_code == 200, answer.text
    samples = answer.json()
    steps = work.training(model_id, training_id)["manifest"]["sampling"]["steps"]
    assert steps == [25, 50, 75, 100]  # fast, strength 0: 100 steps
    prompts = ["a photo of SKS dog", *PROMPTS]
    assert [(s["step"], s["prompt"]) for s in samples] == [(t, p) for t in steps for p in prompts]
    assert len({s["seed"] for s in samples}) == 3  # one fixed seed per prompt
    image = samples[0]["image"]
    assert image["type"] == "sample"
    fetched = work.api.client.get(image["url"])  # a signed link: no key needed
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).format == "PNG"

    listed = get(work, f"/v1/models/{model_id}/images?imageType=all").json()
    outputs = get(work, f"/v1/models/{model_id}/images?imageType=output").json()
    assert listed["total"] == 2  # the training images only
    assert outputs["total"] == 0
    data = get(work, f"/v1/models/{model_id}/data").json()
    assert len(data) == 2


def test_samplePrompts_are_checked(work: Work) -> None:
    model_id = work.model_with_images(1)
    url = f"/v1/models/{model_id}/trainings"
    for prompts in (["p"] * 5, ["x" * 1001], [""]):
        answer = work.api.client.post(
            url,
            json={"trainingStrength": 0, "trainingSpeed": "fast", "samplePrompts": prompts},
            headers=work.api.headers,
        )
        assert answer.status_code == 422, answer.text
        assert "samplePrompts" in answer.text


def test_sample_events_on_the_training_stream(work: Work) -> None:
    model_id, training_id = trained(work)
    answer = get(work, f"/v1/models/{model_id}/trainings/{training_id}/events")
    events = [
        (block.split("\n")[0].removeprefix("event: "), block.split("\n")[1])
        for block in answer.text.strip().split("\n\n")
        if block.startswith("event:")
    ]
    samples = [json.loads(d.removeprefix("data: ")) for e, d in events if e == "sample"]
    assert len(samples) == 12
    assert {s["step"] for s in samples} == {25, 50, 75, 100}
    assert samples[0]["image"]["url"].startswith("http")
    assert [e for e, _ in events][-2:] == ["update", "done"]


def test_checkpoints_are_listed_and_served(work: Work) -> None:
    model_id, training_id = trained(work)
    base = f"/v1/models/{model_id}/trainings/{training_id}"
    checkpoints = get(work, f"{base}/checkpoints").json()
    assert [c["step"] for c in checkpoints] == [25, 50, 75]  # the final weights are not one
    samples = get(work, f"{base}/samples").json()
    assert checkpoints[0]["sampleImageIds"] == [s["image"]["id"] for s in samples[:3]]
    assert checkpoints[0]["loss"] == pytest.approx(1 / 25)

    at_50 = get(work, f"{base}/weights?step=50")
    final = get(work, f"{base}/weights")
    assert at_50.status_code == final.status_code == 200
    assert f"{training_id}-step50" in at_50.headers["content-disposition"]
    first, last = load(at_50.content), load(final.content)
    assert first.keys() == last.keys()
    assert any((first[k] != last[k]).any() for k in first)
    kohya = get(work, f"{base}/weights?step=50&format=kohya&dtype=fp16")
    assert kohya.status_code == 200
    assert all(k.startswith("lora_unet_") for k in load(kohya.content))

    missing = get(work, f"{base}/weights?step=51")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "checkpoint_not_found"


def test_the_cap_keeps_the_latest_checkpoints(api: Api) -> None:
    from tests.conftest import serving

    settings = api.container.settings.model_copy(update={"max_checkpoints_per_training": 1})
    with serving(settings) as capped:
        trainer = FakeTrainer(safetensors=True)
        worker = build_worker(capped.container, trainer=trainer, generator=FakeGenerator())
        work = Work(api=capped, worker=worker, trainer=trainer, generator=FakeGenerator())
        model_id, training_id = trained(work)
        checkpoints = get(work, f"/v1/models/{model_id}/trainings/{training_id}/checkpoints")
        assert [c["step"] for c in checkpoints.json()] == [75]


def test_a_prediction_may_use_a_checkpoint(work: Work) -> None:
    model_id, training_id = trained(work)

    def predict(step: int) -> Any:
        config = {"scale": 1, "modelId": model_id, "trainingId": training_id}
        return work.api.client.post(
            "/v1/predictions",
            json={"prompt": "SKS", "scaleConfigs": {"a": {**config, "checkpointStep": step}}},
            headers=work.api.headers,
        )

    missing = predict(60)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "checkpoint_not_found"
    answer = predict(25)
    assert answer.status_code == 201, answer.text
    assert work.run_jobs() == 1
    prediction = get(work, f"/v1/predictions/{answer.json()['predictionId']}").json()
    assert prediction["status"] == "succeeded"
    assert prediction["scaleConfigs"]["a"]["checkpointStep"] == 25
    lora = work.generator.specs[-1].loras[0]
    training = work.api.container.trainings.find(_who(work), training_id)
    assert (
        lora.path.read_bytes() != work.api.container.blobs.open(training.artifact_key or "").read()
    )


def test_the_sample_sheet_is_one_labelled_grid(work: Work) -> None:
    model_id = work.model_with_images(2)
    training_id = work.train(model_id, samplePrompts=PROMPTS)
    base = f"/v1/models/{model_id}/trainings/{training_id}"
    before = get(work, f"{base}/sample-sheet")
    assert before.status_code == 404
    assert before.json()["error"]["code"] == "sample_sheet_not_ready"
    assert work.run_jobs() == 1

    answer = get(work, f"{base}/sample-sheet")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    sheet = Image.open(io.BytesIO(answer.content)).convert("RGB")
    assert sheet.size == sheet_size(12, 3) == (3 * CELL, 4 * (CELL + LABEL_HEIGHT))
    samples = get(work, f"{base}/samples").json()
    for n, sample in enumerate(samples):
        row, column = divmod(n, 3)
        left, top = column * CELL, row * (CELL + LABEL_HEIGHT)
        # The sample's own colour fills its cell (the fake renders solid squares)...
        colour = Image.open(io.BytesIO(work.api.client.get(sample["image"]["url"]).content))
        assert sheet.getpixel((left + CELL // 2, top + CELL // 2)) == colour.convert(
            "RGB"
        ).getpixel((0, 0))
        # ...and its label strip has ink in it.
        strip = sheet.crop((left, top + CELL, left + CELL, top + CELL + LABEL_HEIGHT))
        darkest, _ = strip.convert("L").getextrema()
        assert isinstance(darkest, int)
        assert darkest < 128


def test_deleting_the_training_frees_the_blobs(work: Work) -> None:
    model_id, training_id = trained(work)
    keys = _output_keys(work, model_id, training_id)
    assert keys
    answer = work.api.client.delete(
        f"/v1/models/{model_id}/trainings/{training_id}", headers=work.api.headers
    )
    assert answer.status_code == 204
    for key in keys:
        with pytest.raises(NotFound):
            work.api.container.blobs.size(key)


def test_deleting_the_model_frees_the_blobs(work: Work) -> None:
    model_id, training_id = trained(work)
    keys = _output_keys(work, model_id, training_id)
    answer = work.api.client.delete(f"/v1/models/{model_id}", headers=work.api.headers)
    assert answer.status_code == 204
    for key in keys:
        with pytest.raises(NotFound):
            work.api.container.blobs.size(key)


def _output_keys(work: Work, model_id: str, training_id: str) -> set[str]:
    """The blob keys of the training's samples, sheet and checkpoints (the sample squares
    are of distinct colours, so no other row shares them)."""
    container = work.api.container
    with container.uow() as uow:
        keys = {c.blob_key for c in uow.training_outputs.checkpoints(training_id)}
        image_ids = [s.image_id for s in uow.training_outputs.samples(training_id)]
        image_ids.append(uow.training_outputs.sheet(training_id) or "")
        for image_id in image_ids:
            image = uow.images.get_unscoped(image_id)
            assert image is not None
            keys |= image.blob_keys()
    for key in keys:
        container.blobs.size(key)  # there now
    return keys


def _who(work: Work) -> Any:
    return work.api.container.keys.authenticate(work.api.key)
