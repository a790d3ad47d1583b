from __future__ import annotations

import re

from tests import imagefactory
from tests.integration.work.conftest import Work


def test_training_without_images_is_409(work: Work) -> None:
    model_id = work.model_with_images(0)
    answer = work.api.client.post(
        f"/v1/models/{model_id}/trainings", json={}, headers=work.api.headers
    )
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "no_training_images"


def test_training_runs_to_success_with_progress_and_weights(work: Work) -> None:
    model_id = work.model_with_images(3)
    training_id = work.train(model_id, trainingStrength=3)
    queued = work.training(model_id, training_id)
    assert queued["status"] == "queued"
    assert re.fullmatch(r"[A-Z][A-Z0-9]{6}", queued["triggerWord"])
    assert work.run_jobs() == 1
    done = work.training(model_id, training_id)
    assert done["status"] == "succeeded"
    assert done["progress"]["step"] == done["progress"]["totalSteps"] > 0
    assert done["startedAt"]
    assert done["finishedAt"]
    spec = work.trainer.specs[0]
    assert len(spec.samples) == 3
    assert all(queued["triggerWord"] in s.caption for s in spec.samples)
    weights = work.api.client.get(
        f"/v1/models/{model_id}/trainings/{training_id}/weights", headers=work.api.headers
    )
    assert weights.status_code == 200
    assert weights.content.startswith(b"fake-lora")
    listed = work.api.client.get(f"/v1/models/{model_id}/trainings", headers=work.api.headers)
    assert listed.json() == [{"id": training_id, "status": "succeeded"}]


def test_manifest_is_frozen_when_the_training_starts(work: Work) -> None:
    model_id = work.model_with_images(2)
    training_id = work.train(model_id)
    before = work.training(model_id, training_id)["manifest"]
    client, headers = work.api.client, work.api.headers
    data = client.get(f"/v1/models/{model_id}/data", headers=headers).json()
    client.delete(f"/v1/models/{model_id}/data/{data[0]['dataId']}", headers=headers)
    client.post(f"/v1/models/{model_id}/data", content=imagefactory.jpeg(30, 30), headers=headers)
    work.run_jobs()
    after = work.training(model_id, training_id)
    assert after["status"] == "succeeded"
    assert after["manifest"] == before
    assert [i["sha256"] for i in before["images"]] == [
        i["sha256"] for i in sorted(data, key=lambda d: d["createdAt"])
    ]
    # the deleted image's bytes were still used: they were pinned by the training
    assert len(work.trainer.specs[0].samples) == 2


def test_cancel_queued_and_finished(work: Work) -> None:
    model_id = work.model_with_images(1)
    training_id = work.train(model_id)
    url = f"/v1/models/{model_id}/trainings/{training_id}"
    canceled = work.api.client.post(f"{url}/cancel", headers=work.api.headers)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    work.run_jobs()
    assert work.training(model_id, training_id)["status"] == "canceled"
    assert work.trainer.specs == []
    again = work.api.client.post(f"{url}/cancel", headers=work.api.headers)
    assert again.status_code == 409
    weights = work.api.client.get(f"{url}/weights", headers=work.api.headers)
    assert weights.status_code == 409


def test_delete_hides_the_training(work: Work) -> None:
    """That it is soft and does not cancel: tests/unit/services/test_trainings.py."""
    model_id = work.model_with_images(1)
    training_id = work.train(model_id)
    url = f"/v1/models/{model_id}/trainings/{training_id}"
    assert work.api.client.delete(url, headers=work.api.headers).status_code == 204
    assert work.api.client.get(url, headers=work.api.headers).status_code == 404


def test_other_accounts_trainings_are_404(work: Work) -> None:
    model_id = work.model_with_images(1)
    training_id = work.train(model_id)
    other = work.api.new_account()
    url = f"/v1/models/{model_id}/trainings/{training_id}"
    for answer in (
        work.api.client.get(url, headers=other),
        work.api.client.post(f"{url}/cancel", headers=other),
        work.api.client.get(f"/v1/models/{model_id}/trainings", headers=other),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


def test_training_body_validation(work: Work) -> None:
    model_id = work.model_with_images(1)
    url = f"/v1/models/{model_id}/trainings"
    for body, field in (
        ({"trainingStrength": 11}, "trainingStrength"),
        ({"trainingStrength": -1}, "trainingStrength"),
        ({"trainingSpeed": "slow"}, "trainingSpeed"),
        ({"webhookUrl": "ftp://x"}, "webhookUrl"),
    ):
        answer = work.api.client.post(url, json=body, headers=work.api.headers)
        assert answer.status_code == 422, body
        assert answer.json()["error"]["field"] == field


def test_events_stream_follows_a_training(work: Work) -> None:
    model_id = work.model_with_images(1)
    training_id = work.train(model_id)
    work.run_jobs()
    url = f"/v1/models/{model_id}/trainings/{training_id}/events"
    with work.api.client.stream("GET", url, headers=work.api.headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    assert "event: update" in text
    assert "event: done" in text
    assert '"status":"succeeded"' in text
