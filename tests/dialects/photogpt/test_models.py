"""PhotoGPT models: created and updated from a person's traits, status from the trainings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loraforge.domain.entities import Model
from loraforge.domain.work import RunStatus, Training, TrainingSpeed
from loraforge.services.models import ModelStatus, model_status
from tests import imagefactory
from tests.conftest import Api
from tests.dialects.photogpt.helpers import (
    PREFIX,
    assert_error,
    create_model,
    ok_result,
    photogpt_headers,
    upload,
)

MODEL_FIELDS = {
    "createdAt",
    "id",
    "modelType",
    "status",
    "updatedAt",
    "name",
    "age",
    "gender",
    "ethnicity",
    "eyeColor",
}


def test_create_update_get_and_list(api: Api) -> None:
    c, h = api.client, api.headers
    body = {"name": "Ann", "age": 31, "gender": "female", "ethnicity": "x", "eyeColor": "green"}

    created = ok_result(c.post(f"{PREFIX}/models", json=body, headers=h))

    assert set(created) == MODEL_FIELDS
    assert created["status"] == "new"
    assert created["modelType"] == "person"
    assert {k: created[k] for k in body} == body
    model_id = created["id"]
    assert ok_result(c.get(f"{PREFIX}/models/{model_id}", headers=h)) == created

    update = {"id": model_id, "eyeColor": "blue", "status": "ready", "unknownField": 1}
    updated = ok_result(c.post(f"{PREFIX}/models", json=update, headers=h))

    assert updated["id"] == model_id
    assert updated["eyeColor"] == "blue"
    assert updated["age"] == 31  # fields not sent are kept
    assert updated["name"] == "Ann"
    assert updated["status"] == "new"  # server-owned: never taken from the body
    assert updated["createdAt"] == created["createdAt"]
    renamed = ok_result(c.post(f"{PREFIX}/models", json={"id": model_id, "name": "Bo"}, headers=h))
    assert renamed["name"] == "Bo"
    assert renamed["eyeColor"] == "blue"
    native = c.get(f"/v1/models/{model_id}", headers=h).json()
    assert native["displayName"] == "Bo"

    other = create_model(c, api.key, "Cy")
    listed = c.get(f"{PREFIX}/models", headers=h).json()
    assert listed["status"] == "OK"
    assert (listed["page"], listed["pageSize"]) == (1, 20)
    assert [m["id"] for m in listed["result"]] == [other, model_id]  # newest first
    second = c.get(f"{PREFIX}/models", params={"pageNum": 2, "pageSize": 1}, headers=h).json()
    assert [m["id"] for m in second["result"]] == [model_id]


def test_model_errors(api: Api) -> None:
    c, h = api.client, api.headers
    assert_error(c.post(f"{PREFIX}/models", json={"age": 3}, headers=h), 422, "invalid_request")
    assert_error(c.post(f"{PREFIX}/models", json={"name": " "}, headers=h), 422, "invalid_request")
    assert_error(
        c.post(f"{PREFIX}/models", json={"name": "A", "age": -1}, headers=h), 422, "invalid_request"
    )
    assert_error(
        c.post(f"{PREFIX}/models", content=b"{", headers={**h, "Content-Type": "application/json"}),
        400,
        "bad_request",
    )
    unknown = c.post(f"{PREFIX}/models", json={"id": "nope", "name": "A"}, headers=h)
    assert_error(unknown, 404, "not_found")
    assert_error(c.get(f"{PREFIX}/models/nope", headers=h), 404, "not_found")
    model_id = create_model(c, api.key)
    other = photogpt_headers(api.container.keys.create(name="other").plaintext)
    stolen = c.post(f"{PREFIX}/models", json={"id": model_id, "name": "Mine"}, headers=other)
    assert_error(stolen, 404, "not_found")
    assert ok_result(c.get(f"{PREFIX}/models/{model_id}", headers=h))["name"] == "Ann"
    c.delete(f"/v1/models/{model_id}", headers=h)
    assert_error(c.get(f"{PREFIX}/models/{model_id}", headers=h), 404, "not_found")


def test_a_started_training_makes_the_model_training(api: Api) -> None:
    model_id = create_model(api.client, api.key)
    ok_result(upload(api.client, api.key, model_id, imagefactory.jpeg(32, 32)))
    who = api.container.keys.authenticate(api.key)

    api.container.trainings.start(who, model_id, strength=1, speed=TrainingSpeed.FAST)

    got = ok_result(api.client.get(f"{PREFIX}/models/{model_id}", headers=api.headers))
    assert got["status"] == "training"
    listed = api.client.get(f"{PREFIX}/models", headers=api.headers).json()["result"]
    assert [m["status"] for m in listed] == ["training"]


def _model(deleted: bool = False) -> Model:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Model("m", "a", "M", None, "tiny", now, now, deleted_at=now if deleted else None)


def _training(status: RunStatus, *, deleted: bool = False) -> Training:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Training(
        id=f"t-{status}",
        account_id="a",
        model_id="m",
        status=status,
        strength=1,
        speed=TrainingSpeed.FAST,
        trigger_word="ABCDEFG",
        manifest={},
        created_at=now,
        deleted_at=now if deleted else None,
    )


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], ModelStatus.NEW),
        ([RunStatus.FAILED, RunStatus.CANCELED], ModelStatus.NEW),
        ([RunStatus.QUEUED], ModelStatus.TRAINING),
        ([RunStatus.PROCESSING, RunStatus.FAILED], ModelStatus.TRAINING),
        ([RunStatus.SUCCEEDED], ModelStatus.READY),
        ([RunStatus.FAILED, RunStatus.SUCCEEDED], ModelStatus.READY),
        ([RunStatus.QUEUED, RunStatus.SUCCEEDED], ModelStatus.TRAINING),  # being retrained
    ],
)
def test_status_is_derived_from_the_trainings(
    statuses: list[RunStatus], expected: ModelStatus
) -> None:
    assert model_status(_model(), [_training(s) for s in statuses]) is expected


def test_deleted_models_and_trainings() -> None:
    assert model_status(_model(deleted=True), []) is ModelStatus.DELETED
    deleted_success = [_training(RunStatus.SUCCEEDED, deleted=True)]
    assert model_status(_model(), deleted_success) is ModelStatus.NEW
