"""Training images, assets and pairs through the official scenario-sdk against a real server."""

from __future__ import annotations

import httpx
import pytest
import scenario_sdk
from scenario_sdk import Scenario

from loraforge.domain.entities import ImageKind
from tests.dialects.scenario.conftest import Served
from tests.dialects.scenario.helpers import png_base64, png_data_url


def _model(sdk: Scenario) -> str:
    return sdk.models.create(name="m", type="flux.1-lora").model.id


def test_add_from_a_data_url_replace_and_delete(served: Served, sdk: Scenario) -> None:
    model_id = _model(sdk)
    added = sdk.models.training_images.add(
        model_id, data=png_data_url(48, 40), name="a.png", preset="style"
    ).training_image
    assert added.id.startswith("asset_")
    assert added.name == "a.png"
    assert added.automatic_captioning == ""  # no captioning model configured
    assert added.description == ""
    download = httpx.get(added.download_url)
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"

    model = sdk.models.retrieve(model_id).model
    assert model.training_images_number == 1
    assert [i.id for i in model.training_images or []] == [added.id]

    replaced = sdk.models.training_images.replace(
        added.id, model_id=model_id, data=png_data_url(64, 32), name="b.png"
    ).training_image
    assert replaced.id == added.id
    assert replaced.name == "b.png"
    assert httpx.get(replaced.download_url).content != download.content

    asset = sdk.assets.upload(name="c.png", image=png_base64(30, 30)).asset
    from_asset = sdk.models.training_images.replace(
        added.id, model_id=model_id, asset_id=asset.id
    ).training_image
    assert from_asset.id == added.id
    assert httpx.get(from_asset.download_url).content == httpx.get(asset.url).content

    assert sdk.models.training_images.delete(added.id, model_id=model_id) == {}
    assert sdk.models.retrieve(model_id).model.training_images_number == 0
    with pytest.raises(scenario_sdk.NotFoundError):
        sdk.models.training_images.delete(added.id, model_id=model_id)


def test_add_assets_one_or_a_batch_all_or_nothing(served: Served, sdk: Scenario) -> None:
    model_id = _model(sdk)
    assets = [
        sdk.assets.upload(name=f"{n}.png", image=png_base64(40 + n, 40)).asset for n in range(3)
    ]
    one = sdk.models.training_images.add(model_id, asset_id=assets[0].id).training_image
    assert one.id != assets[0].id  # a training image of its own, sharing the asset's bytes
    assert one.name == "0.png"

    with pytest.raises(scenario_sdk.NotFoundError):
        sdk.models.training_images.add(model_id, asset_ids=[assets[1].id, "asset_missing"])
    assert sdk.models.retrieve(model_id).model.training_images_number == 1  # nothing added

    batch = sdk.models.training_images.add(model_id, asset_ids=[assets[1].id, assets[2].id])
    extra = batch.model_extra or {}
    assert [i["name"] for i in extra["trainingImages"]] == ["1.png", "2.png"]
    assert batch.training_image.name == "1.png"
    model = sdk.models.retrieve(model_id).model
    assert model.training_images_number == 3
    assert [i.name for i in model.training_images or []] == ["0.png", "1.png", "2.png"]

    # The assets themselves are untouched and still readable.
    assert sdk.assets.retrieve(assets[0].id).asset.id == assets[0].id


def test_the_training_image_limit_answers_409_without_a_retry(served: Served) -> None:
    served.container.limits.max_images_per_type = 1
    requests: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [requests.append]})
    with served.sdk(max_retries=2) as retrying:
        client = retrying.with_options(http_client=http)
        model_id = _model(client)
        client.models.training_images.add(model_id, data=png_data_url(), name="a.png")
        requests.clear()
        with pytest.raises(scenario_sdk.ConflictError) as full:
            client.models.training_images.add(model_id, data=png_data_url(50, 50), name="b.png")
    assert len(requests) == 1  # x-should-retry: false stopped the SDK's retries
    assert full.value.response.headers["x-should-retry"] == "false"
    assert full.value.body == {
        "apiError": "limit_reached",
        "message": "The model already has 1 images of this type.",
    }
    http.close()


def test_replace_pairs(served: Served, sdk: Scenario) -> None:
    model_id = _model(sdk)
    a, b = (
        sdk.models.training_images.add(
            model_id, data=png_data_url(40 + n, 40), name=f"{n}.png"
        ).training_image.id
        for n in range(2)
    )
    answer = sdk.models.training_images.replace_pairs(
        model_id, body=[{"source_id": a, "target_id": b, "instruction": "make it red"}]
    )
    assert answer.count == 1
    assert answer.pairs[0].source_id == a
    assert answer.pairs[0].target_id == b
    assert answer.pairs[0].instruction == "make it red"
    pairs = sdk.models.retrieve(model_id).model.training_image_pairs or []
    assert [(p.source_id, p.target_id, p.instruction) for p in pairs] == [(a, b, "make it red")]

    other_model = _model(sdk)
    foreign = sdk.models.training_images.add(
        other_model, data=png_data_url(), name="x.png"
    ).training_image.id
    asset = sdk.assets.upload(name="r.png", image=png_base64()).asset.id
    for bad in (foreign, asset, "asset_nothing", "not-an-asset-id"):
        with pytest.raises(scenario_sdk.BadRequestError):
            sdk.models.training_images.replace_pairs(
                model_id, body=[{"source_id": a, "target_id": bad}]
            )
    with pytest.raises(scenario_sdk.BadRequestError):
        sdk.models.training_images.replace_pairs(model_id, body=[{"source_id": a}])
    assert sdk.models.training_images.replace_pairs(model_id, body=[]).count == 0

    # A pair whose image is deleted is no longer shown.
    sdk.models.training_images.replace_pairs(model_id, body=[{"source_id": a, "target_id": b}])
    sdk.models.training_images.delete(b, model_id=model_id)
    assert sdk.models.retrieve(model_id).model.training_image_pairs == []


def test_a_training_image_is_a_native_training_image(served: Served, sdk: Scenario) -> None:
    model_id = _model(sdk)
    added = sdk.models.training_images.add(model_id, data=png_data_url(), name="a.png")
    image_id = added.training_image.id.removeprefix("asset_")
    native = httpx.get(
        f"{served.base_url}/v1/models/{model_id.removeprefix('model_')}/images",
        params={"imageType": "input"},
        headers=served.native_headers(),
    )
    assert native.status_code == 200, native.text
    assert [i["id"] for i in native.json()["items"]] == [image_id]
    core = served.container.images.get(served.container.keys.authenticate(served.key), image_id)
    assert (core.kind, core.origin) == (ImageKind.TRAINING, "scenario")
