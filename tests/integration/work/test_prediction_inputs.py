"""Prediction inputs through the native API: negative prompt, scheduler, image-to-image and
inpainting (pictures by image id, data URI or URL), their 422s, their echo, and the pictures'
bytes reaching the generator even when their image is deleted while the run is queued."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest
from PIL import Image

from loraforge.bootstrap import build_worker
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import serving
from tests.fakes import FakeFetcher
from tests.integration.work.conftest import Work
from tests.ml_fakes import FakeGenerator, FakeTrainer

URL = "https://pictures.example/init.png"


def _trained(work: Work) -> tuple[str, str]:
    model_id = work.model_with_images(1)
    training_id = work.train(model_id)
    work.run_jobs()
    return model_id, training_id


def _body(trained: tuple[str, str], **extra: Any) -> dict[str, Any]:
    model_id, training_id = trained
    return {
        "scaleConfigs": {"1": {"scale": 0.8, "modelId": model_id, "trainingId": training_id}},
        "prompt": "a summer dress",
        "seed": 7,
        "num_inference_steps": 4,
        **extra,
    }


def _reference(work: Work, png: bytes) -> str:
    answer = work.api.client.post(
        "/v1/images",
        params={"type": "auxiliaryType"},
        content=png,
        headers={**work.api.headers, "Content-Type": "image/png"},
    )
    assert answer.status_code == 201, answer.text
    image_id: str = answer.json()["id"]
    return image_id


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _create(work: Work, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return work.api.client.post("/v1/predictions", json=body, headers=headers or work.api.headers)


def _mask_png() -> bytes:
    """Black with a white block in the middle: repaint the middle."""
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (16, 16, 48, 32))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def _same_picture(data: bytes, original: bytes) -> bool:
    """The run's picture is ``original``'s display variant (JPEG): same size, the same
    colours region by region (the encoding rings at sharp edges)."""
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(original)) as b:
        if a.size != b.size:
            return False
        ours, theirs = (p.convert("RGB").resize((4, 4), Image.Resampling.BOX) for p in (a, b))
        pairs = zip(ours.tobytes(), theirs.tobytes(), strict=True)
        return all(abs(x - y) <= 24 for x, y in pairs)


def test_every_input_is_recorded_echoed_and_reaches_the_generator(work: Work) -> None:
    trained = _trained(work)
    init = imagefactory.png(64, 48)
    mask = _mask_png()
    init_id = _reference(work, init)
    body = _body(
        trained,
        negative_prompt="blurry, low contrast",
        scheduler="dpmpp_2m_karras",
        init_image=init_id,
        strength=0.4,
        mask_image=_data_uri(mask),
    )
    created = _create(work, body)
    assert created.status_code == 201, created.text
    prediction_id = created.json()["predictionId"]
    echo = work.api.client.get(f"/v1/predictions/{prediction_id}", headers=work.api.headers)
    expected = {
        "negative_prompt": "blurry, low contrast",
        "scheduler": "dpmpp_2m_karras",
        "init_image": init_id,
        "strength": 0.4,
        "mask_image": f"data:sha256,{hashlib.sha256(mask).hexdigest()}",
    }
    assert {k: echo.json()[k] for k in expected} == expected
    # The init image's picture is the run's even once its image is deleted while queued.
    deleted = work.api.client.delete(f"/v1/images/{init_id}", headers=work.api.headers)
    assert deleted.status_code == 204
    held = _held_keys(work, prediction_id)
    assert len(held) == 2
    assert all(work.has_blob(key) for key in held)
    work.run_jobs()
    final = work.api.client.get(f"/v1/predictions/{prediction_id}", headers=work.api.headers)
    assert final.json()["status"] == "succeeded", final.text
    # Finished, it holds them no longer: the deleted image's picture and the mask are gone.
    assert not any(work.has_blob(key) for key in held)
    assert {k: final.json()[k] for k in expected} == expected
    spec = work.generator.specs[-1]
    assert (spec.negative_prompt, spec.scheduler, spec.strength) == (
        "blurry, low contrast",
        "dpmpp_2m_karras",
        0.4,
    )
    assert spec.init_image is not None
    assert spec.mask_image is not None
    assert _same_picture(spec.init_image, init)
    assert _same_picture(spec.mask_image, mask)
    assert [lora.scale for lora in spec.loras] == [0.8]


def _held_keys(work: Work, prediction_id: str) -> set[str]:
    """The blobs of the prediction's input pictures (held or not)."""
    with work.api.container.uow() as uow:
        prediction = uow.predictions.get(prediction_id)
    assert prediction is not None
    return prediction.input_blob_keys


def test_a_finished_prediction_keeps_only_the_pictures_of_images(work: Work) -> None:
    """A data URI's picture goes when its prediction succeeds; an image's, named by id,
    stays with the image. Both are still echoed."""
    trained = _trained(work)
    image = imagefactory.png(64, 48)
    image_id = _reference(work, image)
    by_uri = _create(work, _body(trained, init_image=_data_uri(imagefactory.png(50, 40))))
    by_id = _create(work, _body(trained, init_image=image_id))
    assert (by_uri.status_code, by_id.status_code) == (201, 201), (by_uri.text, by_id.text)
    uri_id, id_id = by_uri.json()["predictionId"], by_id.json()["predictionId"]
    (uri_key,), (image_key,) = _held_keys(work, uri_id), _held_keys(work, id_id)
    assert work.has_blob(uri_key)

    assert work.run_jobs() == 2

    for prediction_id in (uri_id, id_id):
        url = f"/v1/predictions/{prediction_id}"
        final = work.api.client.get(url, headers=work.api.headers).json()
        assert final["status"] == "succeeded", final
    assert not work.has_blob(uri_key)
    who = work.api.container.keys.authenticate(work.api.key)
    kept = work.api.container.images.get(who, image_id)
    assert kept.display_key == image_key
    assert all(work.has_blob(key) for key in kept.blob_keys())
    assert _same_picture(work.generator.specs[-1].init_image or b"", image)
    echo = work.api.client.get(f"/v1/predictions/{uri_id}", headers=work.api.headers).json()
    assert echo["init_image"].startswith("data:sha256,")


def test_defaults_are_echoed_as_such(work: Work) -> None:
    created = _create(work, _body(_trained(work)))
    assert created.status_code == 201, created.text
    echo = work.api.client.get(
        f"/v1/predictions/{created.json()['predictionId']}", headers=work.api.headers
    ).json()
    assert {k: echo[k] for k in ("negative_prompt", "scheduler", "init_image", "strength")} == {
        "negative_prompt": "",
        "scheduler": None,
        "init_image": None,
        "strength": None,
    }
    assert echo["mask_image"] is None
    work.run_jobs()
    spec = work.generator.specs[-1]
    assert (spec.init_image, spec.mask_image, spec.scheduler) == (None, None, None)


def test_a_url_picture_is_fetched_through_the_guarded_fetcher(settings: Settings) -> None:
    init = imagefactory.png(40, 40)
    fetcher = FakeFetcher({URL: init})
    with serving(settings, fetcher=fetcher) as api:
        generator = FakeGenerator()
        worker = build_worker(api.container, trainer=FakeTrainer(), generator=generator, owner="t")
        work = Work(api=api, worker=worker, trainer=FakeTrainer(), generator=generator)
        trained = _trained(work)
        created = _create(work, _body(trained, init_image=URL))
        assert created.status_code == 201, created.text
        work.run_jobs()
        echo = api.client.get(
            f"/v1/predictions/{created.json()['predictionId']}", headers=api.headers
        ).json()
        assert (echo["init_image"], echo["strength"], echo["status"]) == (URL, 0.75, "succeeded")
        assert generator.specs[-1].init_image is not None
        assert _same_picture(generator.specs[-1].init_image, init)
        refused = _create(work, _body(trained, init_image="https://pictures.example/missing"))
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "fetch_failed"
        assert refused.json()["error"]["field"] == "init_image"


@pytest.mark.parametrize(
    ("extra", "status", "code", "field"),
    [
        ({"negative_prompt": "x" * 1001}, 422, "invalid_request", "negative_prompt"),
        ({"scheduler": "lms"}, 422, "invalid_request", "scheduler"),
        ({"strength": 0.5}, 422, "invalid_request", "strength"),
        ({"init_image": "IMAGE", "strength": 1.5}, 422, "invalid_request", "strength"),
        ({"init_image": "IMAGE", "strength": "0.5"}, 422, "invalid_request", "strength"),
        ({"mask_image": "IMAGE"}, 422, "init_image_required", "mask_image"),
        ({"init_image": ""}, 422, "invalid_request", "init_image"),
        ({"init_image": "no-such-image"}, 404, "not_found", "init_image"),
        ({"init_image": "IMAGE", "mask_image": "no-such"}, 404, "not_found", "mask_image"),
        ({"init_image": "data:image/png;base64,!!!"}, 400, "bad_request", "init_image"),
        ({"init_image": "data:image/svg+xml;base64,PHN2Zz4="}, 415, "unsupported_format", None),
        ({"init_image": _data_uri(b"\x89PNG\r\n\x1a\nbroken")}, 422, "corrupt_image", "init_image"),
        ({"reference_images": ["IMAGE"]}, 422, "reference_unsupported", "reference_images"),
        ({"reference_images": ["a"] * 5}, 422, "invalid_request", "reference_images"),
        ({"reference_scale": 0.5}, 422, "invalid_request", "reference_scale"),
        (
            {"reference_images": ["IMAGE"], "reference_scale": 2},
            422,
            "invalid_request",
            "reference_scale",
        ),
        (
            {"control": {"type": "canny", "image": "IMAGE"}},
            422,
            "control_unsupported",
            "control",
        ),
        ({"control": {"type": "edges", "image": "IMAGE"}}, 422, "invalid_request", "control.type"),
        (
            {"control": {"type": "depth", "image": "IMAGE", "scale": 3}},
            422,
            "invalid_request",
            "control.scale",
        ),
    ],
)
def test_bad_inputs_get_a_clear_error_naming_the_field(
    work: Work, extra: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    trained = _trained(work)
    image_id = _reference(work, imagefactory.png(40, 40))
    given: dict[str, Any] = {
        k: (v.replace("IMAGE", image_id) if isinstance(v, str) else v) for k, v in extra.items()
    }
    if "reference_images" in given:
        given["reference_images"] = [
            v.replace("IMAGE", image_id) for v in given["reference_images"]
        ]
    if "control" in given:
        given["control"] = {**given["control"], "image": image_id}
    answer = _create(work, _body(trained, **given))
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert error.get("field") == field
    if code in ("reference_unsupported", "control_unsupported"):
        assert "tiny" in error["message"]  # names the base model
    assert work.run_jobs() == 0  # nothing was queued


def test_another_accounts_image_is_not_found(work: Work) -> None:
    trained = _trained(work)
    image_id = _reference(work, imagefactory.png(40, 40))
    other = work.api.new_account()
    theirs = work.api.client.post(
        "/v1/images",
        params={"type": "auxiliaryType"},
        content=imagefactory.png(30, 30),
        headers={**other, "Content-Type": "image/png"},
    ).json()["id"]
    answer = _create(work, _body(trained, init_image=theirs))
    assert answer.status_code == 404
    assert answer.json()["error"]["field"] == "init_image"
    assert _create(work, _body(trained, init_image=image_id)).status_code == 201


def test_base_models_say_their_render_resolution_and_inputs(work: Work) -> None:
    listed = work.api.client.get("/v1/base-models", headers=work.api.headers).json()
    tiny = next(m for m in listed if m["name"] == "tiny")
    assert tiny["renderResolution"] == 256
    assert tiny["inputs"] == ["negative_prompt", "scheduler", "init_image", "mask_image"]
