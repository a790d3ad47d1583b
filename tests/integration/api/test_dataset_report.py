"""The dataset check over HTTP with real pictures and the real inspector: the report, the
warnings of an upload, and a training that requires a ready dataset or freezes its counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import ImageFilter

from loraforge.domain.buckets import bucket_for
from loraforge.domain.entities import Principal
from loraforge.services import dataset_check
from tests import imagefactory
from tests.conftest import Api
from tests.imagefactory import encoded, scene

FACE = Path(__file__).resolve().parents[2] / "fixtures" / "astronaut_face.jpg"
TINY_SIDE = 256  # the built-in base model's native side: shorter pictures are low_resolution


def create_model(api: Api, **fields: Any) -> str:
    answer = api.client.post(
        "/v1/models", json={"displayName": "Dresses", **fields}, headers=api.headers
    )
    assert answer.status_code == 201, answer.text
    model_id: str = answer.json()["id"]
    return model_id


def add_data(api: Api, model_id: str, body: bytes) -> dict[str, Any]:
    answer = api.client.post(f"/v1/models/{model_id}/data", content=body, headers=api.headers)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def report(api: Api, model_id: str) -> dict[str, Any]:
    answer = api.client.get(f"/v1/models/{model_id}/dataset-report", headers=api.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def issues_by_image(body: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    return {i["id"]: {issue["code"]: issue for issue in i["issues"]} for i in body["images"]}


def messy_dataset(api: Api, model_id: str) -> dict[str, str]:
    """Four good pictures, an exact copy, a blurred one, a smaller re-encoding of another and
    a small one, uploaded in that order; their data ids by role."""
    pictures = {
        "one": encoded(scene(1, (512, 384))),
        "two": encoded(scene(2, (512, 384))),
        "three": encoded(scene(3, (384, 512))),
        "four": encoded(scene(4, (512, 512))),
    }
    pictures["copy"] = pictures["one"]
    pictures["blurred"] = encoded(scene(5, (512, 384)).filter(ImageFilter.GaussianBlur(3)))
    pictures["burst"] = encoded(scene(2, (512, 384)).resize((448, 336)), quality=60)
    pictures["small"] = encoded(scene(6, (200, 150)))
    return {role: add_data(api, model_id, body)["dataId"] for role, body in pictures.items()}


def test_a_blurred_duplicate_laden_dataset_is_reported_as_such(api: Api) -> None:
    model_id = create_model(api)
    ids = messy_dataset(api, model_id)

    body = report(api, model_id)

    found = issues_by_image(body)
    assert [i["id"] for i in body["images"]] == list(ids.values())  # upload order
    assert {role: sorted(found[i]) for role, i in ids.items()} == {
        "one": ["uncaptioned"],
        "two": ["uncaptioned"],
        "three": ["uncaptioned"],
        "four": ["uncaptioned"],
        "copy": ["exact_duplicate", "uncaptioned"],
        "blurred": ["blurry", "uncaptioned"],
        "burst": ["near_duplicate", "uncaptioned"],
        "small": ["low_resolution", "uncaptioned"],
    }
    assert found[ids["copy"]]["exact_duplicate"]["of"] == ids["one"]
    near = found[ids["burst"]]["near_duplicate"]
    assert near["of"] == ids["two"]
    assert 0 <= near["distance"] <= near["threshold"] == 10
    blurry = found[ids["blurred"]]["blurry"]
    assert blurry["sharpness"] < blurry["threshold"] == 50.0
    small = found[ids["small"]]["low_resolution"]
    assert (small["shortSide"], small["minimum"]) == (150, TINY_SIDE)
    assert all(issue["message"] for image in found.values() for issue in image.values())
    assert body["summary"] == {
        "count": 8,
        "usable": 5,
        "captioned": 0,
        "unmeasured": 0,
        "minImages": 5,
        "issues": {
            "blurry": 1,
            "exact_duplicate": 1,
            "low_resolution": 1,
            "near_duplicate": 1,
            "uncaptioned": 8,
        },
    }
    assert body["ready"] is True
    first = body["images"][0]
    assert (first["width"], first["height"], first["faces"], first["measured"]) == (
        512,
        384,
        0,
        True,
    )


def test_a_training_can_require_a_ready_dataset_and_otherwise_freezes_its_counts(
    api: Api,
) -> None:
    model_id = create_model(api)
    ids = messy_dataset(api, model_id)
    api.client.delete(f"/v1/models/{model_id}/data/{ids['four']}", headers=api.headers)
    trainings = f"/v1/models/{model_id}/trainings"

    refused = api.client.post(trainings, json={"requireReadyDataset": True}, headers=api.headers)

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == {
        "code": "dataset_not_ready",
        "message": "The dataset is not ready: 4 of 7 images are usable, 5 are needed (issues: "
        "1 blurry, 1 exact_duplicate, 1 low_resolution, 1 near_duplicate, 7 uncaptioned).",
    }
    assert api.client.get(trainings, headers=api.headers).json() == []

    started = api.client.post(trainings, json={"flipAugment": True}, headers=api.headers)
    assert started.status_code == 201, started.text
    training_id = started.json()["trainingId"]
    training = api.client.get(f"{trainings}/{training_id}", headers=api.headers).json()
    manifest = training["manifest"]
    assert manifest["dataset"] == {
        "count": 7,
        "usable": 4,
        "captioned": 0,
        "unmeasured": 0,
        "minImages": 5,
        "ready": False,
        "issues": {
            "blurry": 1,
            "exact_duplicate": 1,
            "low_resolution": 1,
            "near_duplicate": 1,
            "uncaptioned": 7,
        },
    }
    trained = [i["id"] for i in manifest["images"]]
    assert ids["copy"] not in trained  # the same file as "one": trained once
    assert len(trained) == len({i["sha256"] for i in manifest["images"]}) == 6
    resolution = manifest["hyperparameters"]["resolution"]
    sizes = {i["id"]: (i["width"], i["height"]) for i in report(api, model_id)["images"]}
    assert {i["id"]: i["bucket"] for i in manifest["images"]} == {
        i: str(bucket_for(*sizes[i], resolution)) for i in trained
    }
    assert manifest["hyperparameters"]["flip_augment"] is True


def test_training_options_are_strict_booleans(api: Api) -> None:
    model_id = create_model(api)
    add_data(api, model_id, encoded(scene(1, (512, 384))))
    for field in ("requireReadyDataset", "flipAugment"):
        answer = api.client.post(
            f"/v1/models/{model_id}/trainings", json={field: "yes"}, headers=api.headers
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"


def test_a_person_model_is_checked_for_faces(api: Api) -> None:
    model_id = create_model(api, customModelType="person")
    face = add_data(api, model_id, FACE.read_bytes())["dataId"]
    nobody = add_data(api, model_id, encoded(scene(1, (512, 384))))["dataId"]

    body = report(api, model_id)

    faces = {i["id"]: i["faces"] for i in body["images"]}
    assert faces == {face: 1, nobody: 0}
    found = issues_by_image(body)
    assert "no_face" not in found[face]
    assert found[nobody]["no_face"]["faces"] == 0


def test_images_not_measured_yet_say_so(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_check, "MEASURE_AT_ONCE", 1)
    model_id = create_model(api)
    for seed in (1, 2, 3):
        add_data(api, model_id, encoded(scene(seed, (512, 384))))

    body = report(api, model_id)

    assert [(i["measured"], i["faces"]) for i in body["images"]] == [
        (True, 0),
        (False, None),
        (False, None),
    ]
    assert body["summary"]["unmeasured"] == 2
    assert report(api, model_id)["summary"]["unmeasured"] == 1  # measured as asked for


def test_a_report_of_an_unknown_or_foreign_model_is_not_found(api: Api) -> None:
    model_id = create_model(api)
    for headers, path in [
        (api.headers, "/v1/models/no-such-model/dataset-report"),
        (api.new_account(), f"/v1/models/{model_id}/dataset-report"),
    ]:
        answer = api.client.get(path, headers=headers)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "not_found"


# --- the warnings of an upload ------------------------------------------------------------


def test_a_data_upload_warns_of_what_is_known_at_once(api: Api) -> None:
    model_id = create_model(api)
    small = encoded(scene(6, (200, 150)))

    first = add_data(api, model_id, small)
    again = add_data(api, model_id, small)

    assert first["warnings"] == [
        {
            "code": "low_resolution",
            "message": "The short side is 150 px; the base model trains at 256 px, so the "
            "picture would be enlarged.",
            "shortSide": 150,
            "minimum": TINY_SIDE,
        },
        {"code": "uncaptioned", "message": "The image has no caption."},
    ]
    assert [w["code"] for w in again["warnings"]] == [
        "exact_duplicate",
        "low_resolution",
        "uncaptioned",
    ]
    assert again["warnings"][0]["of"] == first["dataId"]


def test_an_image_upload_warns_for_training_images_only(api: Api) -> None:
    model_id = create_model(api)
    wide = imagefactory.png(900, 300)

    training = api.client.post(
        "/v1/images",
        params={"type": "modelInput", "modelId": model_id},
        content=wide,
        headers=api.headers,
    )
    reference = api.client.post(
        "/v1/images",
        files={"file": ("pose.png", wide, "image/png")},
        data={"data": f'{{"modelId": "{model_id}", "type": "auxiliaryType"}}'},
        headers=api.headers,
    )

    assert training.status_code == reference.status_code == 201
    warnings = {w["code"]: w for w in training.json()["warnings"]}
    assert sorted(warnings) == ["extreme_aspect", "uncaptioned"]
    assert (warnings["extreme_aspect"]["aspect"], warnings["extreme_aspect"]["maximum"]) == (
        3.0,
        2.5,
    )
    assert reference.json()["warnings"] == []
    read = api.client.get(f"/v1/images/{training.json()['id']}", headers=api.headers).json()
    assert "warnings" not in read  # an answer of the upload only


def test_every_way_a_training_image_comes_in_queues_its_measuring(api: Api) -> None:
    model_id = create_model(api)
    uploaded = add_data(api, model_id, encoded(scene(1, (512, 384))))["dataId"]
    reference = api.client.post(
        "/v1/images",
        params={"type": "auxiliaryType"},
        content=imagefactory.png(300, 300),
        headers=api.headers,
    ).json()["id"]
    replaced = api.client.put(
        f"/v1/models/{model_id}/data/{uploaded}",
        content=encoded(scene(2, (512, 384))),
        headers=api.headers,
    )
    assert replaced.status_code == 200, replaced.text
    c = api.container
    who = Principal(account_id=c.keys.list()[0].account_id, key_id="t")
    (copy,) = c.training_images.copy_in(who, model_id, [reference], origin="scenario")

    with c.uow() as uow:
        jobs = {
            subject: uow.jobs.for_subject(subject) for subject in (uploaded, copy.id, reference)
        }
    assert {s: (j.kind.value, j.state.value) if j else None for s, j in jobs.items()} == {
        uploaded: ("inspection", "queued"),  # the upload's, then the replacement's
        copy.id: ("inspection", "queued"),
        reference: None,  # not a training image
    }
