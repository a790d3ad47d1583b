"""``automaticCaptioning``: the configured captioner's text, written by a caption job after the
upload answered, stored as the core caption, used in training captions. The captioner is a tiny
BLIP built in the test (tests/unit/adapters)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loraforge.app import create_app
from loraforge.bootstrap import Container, build, build_worker
from loraforge.dialects.scenario import PREFIX
from loraforge.settings import Settings
from tests.dialects.scenario.conftest import Served, serving
from tests.dialects.scenario.helpers import png_base64, png_data_url
from tests.ml_fakes import FakeGenerator, FakeTrainer
from tests.unit.adapters.tiny_blip import WORD, build_tiny_blip

CAPTION = " ".join([WORD] * 30)  # the captioner's default max_new_tokens


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        yield build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


@pytest.fixture
def captioning(settings: Settings, blip_dir: Path) -> Iterator[Container]:
    settings.captioning_model_dir = blip_dir  # bootstrap picks the transformers captioner
    container = build(settings)
    yield container
    container.close()


def test_captions_reach_the_wire_the_core_and_the_training(captioning: Container) -> None:
    with serving(captioning) as base_url:
        served = Served(captioning, base_url, captioning.keys.create(name="c").plaintext)
        with served.sdk() as sdk:
            model_id = sdk.models.create(name="captioned").model.id
            added = sdk.models.training_images.add(model_id, data=png_data_url(), name="a.png")
            assert added.training_image.automatic_captioning == ""  # never in the request
            asset = sdk.assets.upload(name="b.png", image=png_base64(30, 50)).asset
            assert asset.automatic_captioning is None  # assets are not captioned
            copied = sdk.models.training_images.add(model_id, asset_id=asset.id)
            assert copied.training_image.automatic_captioning == ""

            assert run_jobs(captioning) == 2  # one caption job per upload
            images = sdk.models.retrieve(model_id).model.training_images or []
            assert [i.automatic_captioning for i in images] == [CAPTION, CAPTION]
            assert [i.description for i in images] == ["", ""]  # no caption of the user's
            job_id = sdk.models.train.trigger(model_id).job.job_id

    who = captioning.keys.authenticate(served.key)
    image = captioning.images.get(who, added.training_image.id.removeprefix("asset_"))
    assert image.caption == CAPTION
    training = captioning.trainings.find(who, job_id.removeprefix("job_"))
    captions = [item["caption"] for item in training.manifest["images"]]
    assert captions == [f"a photo of {training.trigger_word}, {CAPTION}"] * 2


def run_jobs(container: Container) -> int:
    worker = build_worker(container, trainer=FakeTrainer(), generator=FakeGenerator())
    ran = 0
    while worker.run_once():
        ran += 1
    return ran


class Exploding:
    def caption(self, image: bytes) -> str:
        raise RuntimeError("out of memory")


def test_a_failing_captioner_does_not_fail_the_upload(settings: Settings) -> None:
    container = build(settings, captioner=Exploding())
    try:
        with TestClient(create_app(container=container)) as client:
            key = container.keys.create(name="x").plaintext
            headers = {"Authorization": f"Bearer {key}"}
            model = client.post(PREFIX + "/models", json={}, headers=headers).json()["model"]
            answer = client.post(
                f"{PREFIX}/models/{model['id']}/training-images",
                json={"data": png_data_url(), "name": "a.png"},
                headers=headers,
            )
    finally:
        container.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()["trainingImage"]["automaticCaptioning"] == ""
