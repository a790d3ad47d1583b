"""A server without the ML extra: the API serves, new trainings and predictions are refused.

Its own workers (``LORAFORGE_WORKERS`` > 0) could not run them, so they answer 501
``ml_unavailable`` at once, in every wire format, and leave nothing behind; with no workers of
its own (0) the server queues them for workers elsewhere. The missing extra is real to
``loraforge.extras``: one of its modules is a module that is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loraforge import extras
from loraforge.bootstrap import Container, build, build_worker
from loraforge.domain.work import TrainingSpeed
from loraforge.settings import Settings
from tests.dialects.scenario.helpers import png_data_url
from tests.integration.work.conftest import Work
from tests.ml_fakes import FakeGenerator, FakeTrainer

ABSENT = "loraforge_test_module_that_is_not_installed"


@pytest.fixture
def container(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    """The ``api`` fixture's container, on an installation without the ML extra."""
    monkeypatch.setitem(extras.EXTRAS, "ml", (*extras.EXTRAS["ml"], ABSENT))
    assert settings.workers > 0  # the default: the server runs the jobs itself
    built = build(settings)
    yield built
    built.close()


def test_a_training_answers_ml_unavailable_and_leaves_nothing(work: Work) -> None:
    model_id = work.model_with_images(1)
    client, headers = work.api.client, work.api.headers
    answer = client.post(f"/v1/models/{model_id}/trainings", json={}, headers=headers)
    assert answer.status_code == 501, answer.text
    error = answer.json()["error"]
    assert error["code"] == "ml_unavailable"
    assert "pip install 'loraforge[ml]'" in error["message"]
    assert "retry-after" not in answer.headers  # waiting does not help
    assert client.get(f"/v1/models/{model_id}/trainings", headers=headers).json() == []
    assert work.run_jobs() == 0


def test_a_prediction_answers_ml_unavailable(work: Work, settings: Settings) -> None:
    model_id = work.model_with_images(1)
    # Another server on the same database whose workers run elsewhere queues the training.
    elsewhere = build(settings.model_copy(update={"workers": 0}))
    try:
        who = elsewhere.keys.authenticate(work.api.key)
        training = elsewhere.trainings.start(who, model_id, strength=0, speed=TrainingSpeed.FAST)
        assert training.status.value == "queued"
        worker = build_worker(elsewhere, trainer=FakeTrainer(), generator=FakeGenerator())
        assert worker.run_once()
    finally:
        elsewhere.close()
    body = {
        "scaleConfigs": {"1": {"scale": 0.8, "modelId": model_id, "trainingId": training.id}},
        "prompt": "a summer dress",
    }
    answer = work.api.client.post("/v1/predictions", json=body, headers=work.api.headers)
    assert answer.status_code == 501, answer.text
    assert answer.json()["error"]["code"] == "ml_unavailable"


def test_scenario_training_answers_ml_unavailable_in_its_shape(work: Work) -> None:
    client, headers = work.api.client, work.api.headers
    base = "/compat/scenario/v1/models"
    made = client.post(base, json={"name": "m", "type": "flux.1-lora"}, headers=headers)
    assert made.status_code == 200, made.text
    model_id = made.json()["model"]["id"]
    added = client.post(
        f"{base}/{model_id}/training-images",
        json={"data": png_data_url(), "name": "a.png"},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    answer = client.put(f"{base}/{model_id}/train", json={}, headers=headers)
    assert answer.status_code == 501, answer.text
    assert answer.json()["apiError"] == "ml_unavailable"
    assert answer.headers["x-should-retry"] == "false"
    assert client.get(f"{base}/{model_id}", headers=headers).json()["model"]["status"] == "new"
