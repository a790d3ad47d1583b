"""One core, several wire formats: what Scenario writes, the native API reads, and back."""

from __future__ import annotations

import httpx
from scenario_sdk import Scenario

from tests import imagefactory
from tests.dialects.scenario.conftest import Served
from tests.dialects.scenario.helpers import png_base64


def test_an_uploaded_asset_is_a_native_reference_image(served: Served, sdk: Scenario) -> None:
    asset = sdk.assets.upload(name="ref.png", image=png_base64(50, 30)).asset
    assert asset.id.startswith("asset_")
    assert (asset.kind, asset.status, asset.mime_type) == ("image", "success", "image/png")
    assert asset.properties.size == len(imagefactory.png(50, 30))
    assert sdk.assets.retrieve(asset.id).asset.url.startswith(served.base_url)

    native = httpx.get(
        f"{served.base_url}/v1/images/{asset.id.removeprefix('asset_')}",
        headers=served.native_headers(),
    )
    assert native.status_code == 200, native.text
    body = native.json()
    assert (body["type"], body["name"], body["modelId"]) == ("auxiliaryType", "ref.png", None)
    assert (body["width"], body["height"]) == (50, 30)
    assert httpx.get(body["url"]).content == imagefactory.png(50, 30)  # byte-exact


def test_a_native_model_and_image_show_through_scenario(served: Served, sdk: Scenario) -> None:
    headers = served.native_headers()
    created = httpx.post(
        f"{served.base_url}/v1/models", json={"displayName": "native"}, headers=headers
    )
    assert created.status_code == 201, created.text
    model_id = created.json()["id"]
    data = httpx.post(
        f"{served.base_url}/v1/models/{model_id}/data",
        content=imagefactory.png(40, 40),
        headers=headers,
    )
    assert data.status_code == 201, data.text

    model = sdk.models.retrieve(f"model_{model_id}").model
    assert (model.name, model.type, model.status) == ("native", "custom", "new")
    assert model.training_images_number == 1
    image = (model.training_images or [])[0]
    assert image.id == f"asset_{data.json()['dataId']}"
    assert image.name == ""
    assert sdk.assets.retrieve(image.id).asset.id == image.id
