"""Scenario's words for captions through the official scenario-sdk: ``conceptPrompt`` and
``classPrompt`` make a training's captions; a caption a client wrote (through the native API) is
a training image's ``description``."""

from __future__ import annotations

import httpx
import pytest
import scenario_sdk
from scenario_sdk import Scenario

from tests.dialects.scenario.conftest import Served
from tests.dialects.scenario.helpers import png_data_url


def _model(sdk: Scenario) -> tuple[str, str]:
    model_id = sdk.models.create(name="words", type="flux.1-lora").model.id
    image = sdk.models.training_images.add(model_id, data=png_data_url(), name="a.png")
    return model_id, image.training_image.id


def _captions(served: Served, job_id: str) -> tuple[str, list[str]]:
    who = served.container.keys.authenticate(served.key)
    training = served.container.trainings.find(who, job_id.removeprefix("job_"))
    return training.trigger_word, [i["caption"] for i in training.manifest["images"]]


def test_a_one_word_concept_prompt_is_the_trigger_word(served: Served, sdk: Scenario) -> None:
    model_id, _ = _model(sdk)

    job = sdk.models.train.trigger(
        model_id, parameters={"concept_prompt": "sks", "class_prompt": "dog"}
    ).job

    assert job.metadata.input is not None
    assert job.metadata.input["triggerWord"] == "sks"
    assert _captions(served, job.job_id) == ("sks", ["a photo of sks dog"])


def test_a_longer_concept_prompt_starts_every_caption(served: Served, sdk: Scenario) -> None:
    model_id, image_id = _model(sdk)
    caption = httpx.patch(
        f"{served.base_url}/v1/images/{image_id.removeprefix('asset_')}",
        json={"caption": "on a beach"},
        headers=served.native_headers(),
    )
    assert caption.status_code == 200, caption.text

    job = sdk.models.train.trigger(
        model_id, parameters={"concept_prompt": "a {daiton} dog", "max_train_steps": 10}
    ).job

    assert _captions(served, job.job_id)[1] == ["a {daiton} dog, on a beach"]


def test_a_class_prompt_over_64_characters_is_a_422_naming_it(
    served: Served, sdk: Scenario
) -> None:
    model_id, _ = _model(sdk)

    with pytest.raises(scenario_sdk.UnprocessableEntityError) as refused:
        sdk.models.train.trigger(model_id, parameters={"class_prompt": "x" * 65})

    assert isinstance(refused.value.body, dict)
    assert refused.value.body["apiError"] == "invalid_request"
    assert sdk.models.retrieve(model_id).model.status == "new"  # nothing started


def test_a_caption_the_client_wrote_is_the_description(served: Served, sdk: Scenario) -> None:
    model_id, image_id = _model(sdk)
    answer = httpx.patch(
        f"{served.base_url}/v1/models/{model_id.removeprefix('model_')}/data/"
        f"{image_id.removeprefix('asset_')}",
        json={"caption": "a red dress"},
        headers=served.native_headers(),
    )
    assert answer.status_code == 200, answer.text

    (image,) = sdk.models.retrieve(model_id).model.training_images or []

    assert (image.description, image.automatic_captioning) == ("a red dress", "")
