from __future__ import annotations

from typing import Any

import pytest

from tests.integration.work.conftest import Work


def _trained(work: Work) -> tuple[str, str]:
    model_id = work.model_with_images(1)
    training_id = work.train(model_id)
    work.run_jobs()
    return model_id, training_id


def _body(model_id: str, training_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "scaleConfigs": {"1": {"scale": 0.8, "modelId": model_id, "trainingId": training_id}},
        "prompt": "a summer dress",
        "image_size": {"width": 512, "height": 512},
        "num_images": 2,
        "output_format": "png",
        "guidance_scale": 7.5,
        "num_inference_steps": 4,
        **extra,
    }


def test_prediction_outputs_are_core_images(work: Work) -> None:
    model_id, training_id = _trained(work)
    client, headers = work.api.client, work.api.headers
    created = client.post("/v1/predictions", json=_body(model_id, training_id), headers=headers)
    assert created.status_code == 201, created.text
    prediction_id = created.json()["predictionId"]
    assert client.get(f"/v1/predictions/{prediction_id}", headers=headers).json()["status"] in (
        "queued",
        "processing",
    )
    work.run_jobs()
    body = client.get(f"/v1/predictions/{prediction_id}", headers=headers).json()
    assert body["status"] == "succeeded"
    assert isinstance(body["seed"], int)  # drawn at random and returned
    assert len(body["outputImages"]) == 2
    first = client.get(body["outputImages"][0])  # signed: no headers
    assert first.status_code == 200
    assert first.content.startswith(b"\x89PNG")
    listed = client.get(
        f"/v1/models/{model_id}/images", params={"imageType": "output"}, headers=headers
    ).json()
    assert {i["id"] for i in listed["items"]} == set(body["outputImageIds"])
    assert all(i["type"] == "output" for i in listed["items"])
    spec = work.generator.specs[0]
    assert [(lora.name, lora.scale) for lora in spec.loras] == [(training_id, 0.8)]


def _outputs(work: Work, model_id: str, **params: Any) -> dict[str, Any]:
    answer = work.api.client.get(
        f"/v1/models/{model_id}/images",
        params={"imageType": "output", **params},
        headers=work.api.headers,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_mix_lists_its_outputs_under_every_model_it_used(work: Work) -> None:
    first, second = _trained(work), _trained(work)
    client, headers = work.api.client, work.api.headers
    alone = client.post("/v1/predictions", json=_body(*second), headers=headers)
    mix = _body(*first)
    mix["scaleConfigs"]["2"] = {"scale": 0.5, "modelId": second[0], "trainingId": second[1]}
    mixed = client.post("/v1/predictions", json=mix, headers=headers)
    work.run_jobs()
    ids = {
        name: client.get(
            f"/v1/predictions/{answer.json()['predictionId']}", headers=headers
        ).json()["outputImageIds"]
        for name, answer in (("alone", alone), ("mixed", mixed))
    }

    assert {i["id"] for i in _outputs(work, first[0])["items"]} == set(ids["mixed"])
    under_second = _outputs(work, second[0])
    assert under_second["total"] == 4
    listed = [i["id"] for i in under_second["items"]]
    assert (set(listed[:2]), set(listed[2:])) == (set(ids["mixed"]), set(ids["alone"]))
    # Pages of one walk both the model's own outputs and the mix's, newest first, once each.
    pages = [_outputs(work, second[0], pageSize=1, pageNum=n)["items"] for n in (1, 2, 3, 4)]
    assert [page[0]["id"] for page in pages] == listed

    # The mix's outputs belong to the first model: deleting it hides them everywhere.
    assert client.delete(f"/v1/models/{first[0]}", headers=headers).status_code in (200, 204)
    assert {i["id"] for i in _outputs(work, second[0])["items"]} == set(ids["alone"])


def test_same_seed_and_parameters_give_the_same_bytes(work: Work) -> None:
    model_id, training_id = _trained(work)
    client, headers = work.api.client, work.api.headers
    ids = [
        client.post(
            "/v1/predictions", json=_body(model_id, training_id, seed=42), headers=headers
        ).json()["predictionId"]
        for _ in range(2)
    ]
    work.run_jobs()
    outputs = [
        [
            client.get(url).content
            for url in client.get(f"/v1/predictions/{p}", headers=headers).json()["outputImages"]
        ]
        for p in ids
    ]
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scaleConfigs": {}}, "scaleConfigs"),
        ({"prompt": ""}, "prompt"),
        ({"image_size": {"width": 504, "height": 512}}, "image_size.width"),
        ({"image_size": {"width": 512, "height": 1544}}, "image_size.height"),
        ({"image_size": {"width": 516, "height": 512}}, "image_size.width"),
        ({"num_images": 0}, "num_images"),
        ({"num_images": 5}, "num_images"),
        ({"output_format": "gif"}, "output_format"),
        ({"guidance_scale": -0.1}, "guidance_scale"),
        ({"guidance_scale": 10.5}, "guidance_scale"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 51}, "num_inference_steps"),
        ({"seed": -1}, "seed"),
        ({"webhookUrl": "file:///etc/passwd"}, "webhookUrl"),
        ({"status": "succeeded"}, "status"),
    ],
)
def test_every_validation_error_names_the_field(
    work: Work, change: dict[str, Any], field: str
) -> None:
    body = _body("m", "t", **change)
    answer = work.api.client.post("/v1/predictions", json=body, headers=work.api.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


def test_scale_config_entry_validation(work: Work) -> None:
    body = _body("m", "t")
    body["scaleConfigs"]["1"]["scale"] = 5
    answer = work.api.client.post("/v1/predictions", json=body, headers=work.api.headers)
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "scaleConfigs.1.scale"


def test_delete_prediction_is_soft(work: Work) -> None:
    model_id, training_id = _trained(work)
    client, headers = work.api.client, work.api.headers
    prediction_id = client.post(
        "/v1/predictions", json=_body(model_id, training_id), headers=headers
    ).json()["predictionId"]
    assert client.delete(f"/v1/predictions/{prediction_id}", headers=headers).status_code == 204
    assert client.get(f"/v1/predictions/{prediction_id}", headers=headers).status_code == 404
    with work.api.container.uow() as uow:
        assert uow.predictions.get(prediction_id) is not None


def test_base_models_and_unknown_base_model(work: Work) -> None:
    client, headers = work.api.client, work.api.headers
    listed = client.get("/v1/base-models", headers=headers).json()
    assert {"name": "tiny", "default": True}.items() <= listed[0].items()
    bad = client.post("/v1/models", json={"displayName": "x", "baseModel": "sd-9"}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "baseModel"
    good = client.post(
        "/v1/models", json={"displayName": "x", "baseModel": "tiny"}, headers=headers
    )
    assert good.json()["baseModel"] == "tiny"
