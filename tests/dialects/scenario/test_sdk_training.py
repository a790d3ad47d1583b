"""Training through the official scenario-sdk: trigger, cancel, job, model status.

The worker runs ``FakeTrainer`` (tests/ml_fakes.py) on a thread of the test process, and once
the real diffusers trainer on the built-in tiny model (few steps).
"""

from __future__ import annotations

import time

import pytest
import scenario_sdk
from scenario_sdk import Scenario
from scenario_sdk.types.job_retrieve_response import Job

from loraforge.adapters.ml.trainer import DiffusersLoraTrainer
from tests.dialects.scenario.conftest import Served, working, working_with
from tests.dialects.scenario.helpers import png_data_url

DEADLINE_S = 30.0


def _model_with_images(sdk: Scenario, count: int = 2) -> str:
    model_id = sdk.models.create(name="trainee", type="flux.1-lora").model.id
    for n in range(count):
        sdk.models.training_images.add(model_id, data=png_data_url(40 + n, 40), name=f"{n}.png")
    return model_id


def test_trigger_cancel_then_train_to_success(served: Served, sdk: Scenario) -> None:
    model_id = _model_with_images(sdk)

    first = sdk.models.train.trigger(model_id, parameters={"max_train_steps": 12, "seed": 7})
    assert first.job.job_id.startswith("job_")
    assert (first.job.status, first.job.job_type) == ("queued", "flux-model-training")
    assert first.job.metadata.output_model_id == model_id
    assert first.model.status == "training"
    assert first.model.job_id == first.job.job_id
    assert first.model.training_progress is not None
    assert first.model.training_progress.stage == "queued-for-train"
    assert first.model.parameters is not None
    assert first.model.parameters.max_train_steps == 12
    hyper = (first.job.metadata.input or {})["hyperparameters"]
    assert isinstance(hyper, dict)
    assert (hyper["steps"], hyper["seed"]) == (12, 7)

    with pytest.raises(scenario_sdk.ConflictError) as busy:
        sdk.models.train.trigger(model_id)
    assert busy.value.body["apiError"] == "already_training"  # type: ignore[index]

    canceled = sdk.models.train.action(model_id, action="cancel").model
    assert canceled.status == "training-canceled"
    assert canceled.training_progress is None
    assert sdk.jobs.retrieve(first.job.job_id).job.status == "canceled"
    with pytest.raises(scenario_sdk.ConflictError):
        sdk.models.train.action(model_id, action="cancel")  # nothing left to cancel

    second = sdk.models.train.trigger(model_id, parameters={"max_train_steps": 20})
    with working(served.container) as trainer:
        job = _wait_for_end(sdk, second.job.job_id)
    assert job.status == "success"
    assert job.progress == 1.0
    assert [h.status for h in job.status_history] == ["queued", "in-progress", "success"]
    assert (job.metadata.output or {})["triggerWord"]
    assert trainer.specs[-1].hyper.steps == 20

    trained = sdk.models.retrieve(model_id).model
    assert trained.status == "trained"
    assert trained.job_id == second.job.job_id
    assert trained.training_progress is None
    assert trained.training_stats is not None
    assert trained.training_stats.train_duration is not None


def test_a_real_training_on_the_tiny_model_ends_trained(served: Served, sdk: Scenario) -> None:
    """The whole flow with the real diffusers trainer on the built-in tiny base model."""
    model_id = _model_with_images(sdk, 2)
    job_id = sdk.models.train.trigger(model_id, parameters={"max_train_steps": 3}).job.job_id
    with working_with(served.container, DiffusersLoraTrainer()):
        job = _wait_for_end(sdk, job_id, deadline_s=180.0)
    assert job.status == "success", job.metadata.error
    assert sdk.models.retrieve(model_id).model.status == "trained"
    with served.container.uow() as uow:
        training = uow.trainings.get(job_id.removeprefix("job_"))
    assert training is not None
    assert training.manifest["baseModel"] == "tiny"
    assert training.artifact_key is not None
    with served.container.blobs.open(training.artifact_key) as weights:
        assert len(weights.read()) > 1000  # a real LoRA .safetensors


def test_jobs_of_other_accounts_and_unknown_ids_are_404(served: Served, sdk: Scenario) -> None:
    model_id = _model_with_images(sdk, 1)
    job_id = sdk.models.train.trigger(model_id).job.job_id
    other = served.sdk(served.new_key())
    for client, wanted in ((other, job_id), (sdk, "job_nope"), (sdk, job_id.removeprefix("job_"))):
        with pytest.raises(scenario_sdk.NotFoundError):
            client.jobs.retrieve(wanted)
    with pytest.raises(scenario_sdk.NotFoundError):
        other.models.train.trigger(model_id)


def test_training_needs_training_images(sdk: Scenario) -> None:
    model_id = sdk.models.create(name="empty").model.id
    with pytest.raises(scenario_sdk.ConflictError) as empty:
        sdk.models.train.trigger(model_id)
    assert empty.value.body["apiError"] == "no_training_images"  # type: ignore[index]


def _wait_for_end(sdk: Scenario, job_id: str, *, deadline_s: float = DEADLINE_S) -> Job:
    deadline = time.monotonic() + deadline_s
    while True:
        job = sdk.jobs.retrieve(job_id).job
        if job.status in ("success", "failure", "canceled"):
            return job
        assert time.monotonic() < deadline, f"job still {job.status}"
        time.sleep(0.1)
