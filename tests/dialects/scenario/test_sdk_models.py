"""Models through the official scenario-sdk in strict mode, against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scenario_sdk
from scenario_sdk import Scenario

from loraforge.bootstrap import build
from loraforge.domain.entities import Principal
from loraforge.settings import Settings
from tests.dialects.scenario.conftest import Served, serving
from tests.dialects.scenario.helpers import png_base64, png_data_url


def test_create_retrieve_update_delete(served: Served, sdk: Scenario) -> None:
    created = sdk.models.create(
        name="My LoRA", type="flux.1-lora", short_description="sd", collection_ids=["c1"]
    ).model
    assert created.id.startswith("model_")
    assert (created.name, created.type, created.status) == ("My LoRA", "flux.1-lora", "new")
    assert created.short_description == "sd"
    assert created.collection_ids == ["c1"]
    assert created.training_images_number == 0
    assert created.training_progress is None

    fetched = sdk.models.retrieve(created.id).model
    assert fetched.id == created.id
    assert fetched.created_at == created.created_at

    asset = sdk.assets.upload(name="thumb.png", image=png_base64()).asset
    updated = sdk.models.update(
        created.id,
        name="Renamed",
        short_description="new description",
        thumbnail=asset.id,
        parameters={"max_train_steps": 500, "learning_rate": 0.0001, "sample_prompts": ["a"]},
    ).model
    assert updated.name == "Renamed"
    assert updated.short_description == "new description"
    assert updated.collection_ids == ["c1"]  # untouched fields stay
    assert updated.thumbnail is not None
    assert updated.thumbnail.asset_id == asset.id
    assert updated.parameters is not None
    assert updated.parameters.max_train_steps == 500
    assert updated.parameters.sample_prompts == ["a"]
    assert sdk.models.retrieve(created.id).model.name == "Renamed"

    assert sdk.models.delete(created.id) == {}
    with pytest.raises(scenario_sdk.NotFoundError) as missing:
        sdk.models.retrieve(created.id)
    assert missing.value.body == {"apiError": "not_found", "message": f"No model {created.id[6:]}."}


def test_the_type_is_echoed_and_defaults_to_flux_lora(served: Served, sdk: Scenario) -> None:
    qwen = sdk.models.create(name="q", type="qwen-image-lora").model
    assert qwen.type == "qwen-image-lora"
    plain = sdk.models.create(name="plain").model
    assert plain.type == "flux.1-lora"  # the default type
    core = served.container.models.get(_principal(served), plain.id.removeprefix("model_"))
    assert core.base_model == served.container.catalog.default
    assert core.custom_model_type == "flux.1-lora"

    with pytest.raises(scenario_sdk.UnprocessableEntityError) as not_lora:
        sdk.models.create(name="base", type="flux.1")
    assert not_lora.value.body["apiError"] == "invalid_request"  # type: ignore[index]
    with pytest.raises(scenario_sdk.UnprocessableEntityError):
        sdk.models.update(qwen.id, type="gpt-image-1")


def test_the_cursor_iterates_over_every_page(served: Served, sdk: Scenario) -> None:
    ids = [sdk.models.create(name=f"m{n}", type="flux.1-lora").model.id for n in range(5)]
    first = sdk.models.list(page_size=2)
    assert len(first.models) == 2
    assert first.next_pagination_token
    listed = [m.id for m in sdk.models.list(page_size=2)]  # follows nextPaginationToken
    assert listed == list(reversed(ids))  # newest first, each once
    last = sdk.models.list(page_size=5)
    assert last.next_pagination_token is None

    other = served.sdk(served.new_key())
    assert list(other.models.list(page_size=2)) == []  # another account sees none of them


def test_a_bad_cursor_is_a_bad_request(sdk: Scenario) -> None:
    with pytest.raises(scenario_sdk.BadRequestError):
        sdk.models.list(pagination_token="not-a-token")


def _principal(served: Served) -> Principal:
    return served.container.keys.authenticate(served.key)


def test_filters_fill_their_pages(served: Served, sdk: Scenario) -> None:
    flux = [sdk.models.create(name=f"f{n}", type="flux.1-lora").model.id for n in range(3)]
    qwen = sdk.models.create(name="q", type="qwen-image-lora", collection_ids=["c"]).model.id
    sdk.models.create(name="z", type="zimage-lora")

    assert [m.id for m in sdk.models.list(page_size=1, type="flux.1-lora")] == flux[::-1]
    both = sdk.models.list(page_size=2, types=["qwen-image-lora", "flux.1-lora"])
    assert [m.id for m in both] == [qwen, *flux[::-1]]
    first = sdk.models.list(page_size=2, types=["qwen-image-lora", "flux.1-lora"])
    assert [m.id for m in first.models] == [qwen, flux[2]]  # read past the zimage model
    assert [m.id for m in sdk.models.list(collection_id="c")] == [qwen]
    assert [m.id for m in sdk.models.list(status="new", page_size=10)] != []
    assert list(sdk.models.list(status="trained")) == []
    assert list(sdk.models.list(privacy="public")) == []
    assert len(list(sdk.models.list(privacy="private", page_size=2))) == 5


def test_each_type_trains_on_its_mapped_or_the_default_base_model(
    settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "base-models.json"
    entry = {"name": "sdxl-local", "family": "sdxl", "resolution": 1024, "path": "sdxl"}
    config.write_text(json.dumps([entry]))
    settings.base_models_config = config
    settings.default_base_model = "tiny"
    settings.scenario_base_models = {"qwen-image-lora": "sdxl-local"}
    container = build(settings)
    try:
        with serving(container) as base_url:
            served = Served(container, base_url, container.keys.create(name="b").plaintext)
            with served.sdk() as sdk:
                qwen = sdk.models.create(name="q", type="qwen-image-lora").model.id
                flux = sdk.models.create(name="f", type="flux.1-lora").model.id
                sdk.models.training_images.add(qwen, data=png_data_url(), name="a.png")
                job = sdk.models.train.trigger(qwen).job
                assert (job.metadata.input or {})["baseModel"] == "sdxl-local"
                assert job.job_type == "musubi-model-training"
                sdk.models.update(flux, type="qwen-image-lora")
                moved = _base_model(served, flux)
                sdk.models.update(flux, type="flux.1-lora")
                back = _base_model(served, flux)
        assert (_base_model(served, qwen), moved, back) == ("sdxl-local", "sdxl-local", "tiny")
    finally:
        container.close()


def _base_model(served: Served, model_id: str) -> str:
    return served.container.models.get(
        _principal(served), model_id.removeprefix("model_")
    ).base_model
