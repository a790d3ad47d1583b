"""Predictions as use cases over fakes: create (checked against its trainings, its job
committed with it, then handed to the queue), refusals that leave nothing behind, soft delete,
and a worker's run to outputs, failure or giving up, each with its status move and webhook."""

from __future__ import annotations

import base64
from collections.abc import Collection
from pathlib import Path

import pytest

from loraforge.domain.entities import ImageKind
from loraforge.domain.errors import Conflict, DomainError, InvalidInput, NotFound, Unavailable
from loraforge.domain.ml import GenerationSpec
from loraforge.domain.work import JobState, Progress, RunStatus, ScaleConfig, Training
from loraforge.services.prediction_inputs import InputRequest
from loraforge.services.predictions import PredictionRequest
from tests import imagefactory
from tests.unit.services.work_world import (
    HOOK,
    STRANGER,
    WHO,
    WorkWorld,
    make_world,
    request,
)


@pytest.fixture
def trained(work: WorkWorld) -> Training:
    return work.trained("m-1")


def test_create_queues_a_prediction_and_hands_it_over_after_the_commit(
    work: WorkWorld, trained: Training
) -> None:
    prediction = work.predictions.create(WHO, request(trained, webhook_url=HOOK))

    assert work.prediction(prediction.id) == prediction
    assert prediction.status is RunStatus.QUEUED
    assert 0 <= prediction.seed < 2**31  # drawn at random when not given
    assert prediction.progress == Progress(total_steps=4)
    job = next(j for j in work.uow.state.jobs.values() if j.subject_id == prediction.id)
    assert job.state is JobState.QUEUED
    assert work.queue.submitted == [trained.id, prediction.id]
    assert work.queue.committed_at_submit == [True, True]


def test_a_given_seed_is_kept(work: WorkWorld, trained: Training) -> None:
    assert work.predictions.create(WHO, request(trained, seed=42)).seed == 42


def _refusals(
    trained: Training, other_base: Training
) -> list[tuple[PredictionRequest, type[DomainError]]]:
    """Requests that are refused, with the error each gets."""

    def config(model_id: str, training_id: str) -> ScaleConfig:
        return ScaleConfig(key="1", scale=0.5, model_id=model_id, training_id=training_id)

    return [
        (request(trained, scale_configs=[]), InvalidInput),
        (request(trained, webhook_url="file:///etc/passwd"), InvalidInput),
        (request(trained, scale_configs=[config(trained.model_id, "tr-missing")]), NotFound),
        (request(trained, scale_configs=[config("m-other", trained.id)]), NotFound),
        (
            request(
                trained,
                scale_configs=[
                    config(trained.model_id, trained.id),
                    ScaleConfig("2", 0.5, other_base.model_id, other_base.id),
                ],
            ),
            InvalidInput,  # one base model per prediction
        ),
    ]


def test_a_refused_prediction_leaves_nothing_and_submits_nothing(
    work: WorkWorld, trained: Training
) -> None:
    other_base = work.trained("m-sd15", base_model="sd15-local")
    submitted = list(work.queue.submitted)
    for bad, error in _refusals(trained, other_base):
        with pytest.raises(error):
            work.predictions.create(WHO, bad)
    assert work.uow.state.predictions == {}
    assert work.queue.submitted == submitted


def test_training_of_another_account_or_not_succeeded(work: WorkWorld) -> None:
    work.model("m-1")
    pending = work.start("m-1")
    with pytest.raises(Conflict) as not_ready:
        work.predictions.create(WHO, request(pending))
    assert not_ready.value.code == "training_not_ready"
    work.run_jobs()
    with pytest.raises(NotFound):
        work.predictions.create(STRANGER, request(pending))
    missing = request(pending, scale_configs=[ScaleConfig("1", 0.8, "m-1", "nope")])
    with pytest.raises(NotFound):
        work.predictions.create(WHO, missing)
    assert work.uow.state.predictions == {}
    assert work.queue.submitted == [pending.id]


def test_nothing_is_submitted_when_the_commit_fails(work: WorkWorld, trained: Training) -> None:
    work.uow.fail_commits(Unavailable("The database is not available."))
    with pytest.raises(Unavailable):
        work.predictions.create(WHO, request(trained))
    assert work.queue.submitted == [trained.id]


def test_delete_is_soft(work: WorkWorld, trained: Training) -> None:
    prediction = work.predictions.create(WHO, request(trained))
    with pytest.raises(NotFound):
        work.predictions.delete(STRANGER, prediction.id)

    work.predictions.delete(WHO, prediction.id)

    with pytest.raises(NotFound):
        work.predictions.get(WHO, prediction.id)
    assert work.prediction(prediction.id).deleted_at == work.clock.now()


# --- the worker's run -------------------------------------------------------------------


def test_a_prediction_runs_to_success_with_its_outputs_and_webhook(
    work: WorkWorld, trained: Training
) -> None:
    prediction = work.predictions.create(WHO, request(trained, seed=7, webhook_url=HOOK))
    started = work.clock.now()

    assert work.run_jobs() == 1

    done = work.predictions.get(WHO, prediction.id)
    assert done.status is RunStatus.SUCCEEDED
    assert (done.started_at, done.finished_at, done.error) == (started, started, None)
    assert done.progress == Progress(step=4, total_steps=4, eta_seconds=0.0)
    assert len(done.output_image_ids) == 2
    outputs = [work.uow.state.images[i] for i in done.output_image_ids]
    assert {(i.kind, i.model_id, i.prediction_id) for i in outputs} == {
        (ImageKind.OUTPUT, "m-1", prediction.id)
    }
    assert list(work.webhooks())[-1] == (
        "prediction.succeeded",
        {
            "id": prediction.id,
            "status": "succeeded",
            "outputImageIds": done.output_image_ids,
            "seed": 7,
            "error": None,
        },
    )


class BrokenGenerator:
    def generate(self, spec: GenerationSpec) -> list[bytes]:
        raise RuntimeError("no memory left")

    def forget(self, paths: Collection[Path]) -> None:
        pass


def test_a_failing_generator_fails_the_prediction_with_its_error(tmp_path: Path) -> None:
    work = make_world(tmp_path, generator=BrokenGenerator())
    prediction = work.predictions.create(WHO, request(work.trained("m-1"), webhook_url=HOOK))

    work.run_jobs()

    failed = work.prediction(prediction.id)
    assert (failed.status, failed.error) == (RunStatus.FAILED, "Generation failed: no memory left")
    assert failed.output_image_ids == []
    assert failed.progress == Progress(total_steps=4)
    assert [e for e, _ in work.webhooks()] == ["prediction.failed"]
    work.images.close()


def test_a_prediction_whose_job_ran_out_of_attempts_fails_with_the_reason(
    work: WorkWorld, trained: Training
) -> None:
    prediction = work.predictions.create(WHO, request(trained, webhook_url=HOOK))
    work.exhaust_attempts()

    assert work.run_jobs() == 0

    failed = work.prediction(prediction.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert "2 attempts" in failed.error
    assert [e for e, _ in work.webhooks()] == ["prediction.failed"]


def _img2img(work: WorkWorld, training: Training) -> tuple[str, str]:
    """A queued prediction from a data-URI picture: its id and the picture's blob key."""
    data_uri = "data:image/png;base64," + base64.b64encode(imagefactory.png(40, 30)).decode()
    inputs = InputRequest(init_image=data_uri, strength=0.5)
    prediction = work.predictions.create(WHO, request(training, inputs=inputs))
    assert prediction.init_image is not None
    key = prediction.init_image.blob_key
    assert work.uow.state.prediction_blobs[prediction.id] == {key}
    assert key in work.blobs.blobs
    return prediction.id, key


@pytest.mark.parametrize("gave_up", [False, True])
def test_a_failed_prediction_keeps_no_picture(tmp_path: Path, gave_up: bool) -> None:
    """Failed by its generator or given up: the end commits with the holds dropped, then the
    picture's blob is removed; the prediction still says which picture it started from.
    (Succeeded: tests/integration/work/test_prediction_inputs.py, where the fake processor's
    one display variant is not also every output's.)"""
    work = make_world(tmp_path, generator=BrokenGenerator())
    prediction_id, key = _img2img(work, work.trained("m-1"))
    if gave_up:
        work.exhaust_attempts()

    work.run_jobs()

    ended = work.prediction(prediction_id)
    assert ended.status is RunStatus.FAILED
    assert ended.error is not None
    assert ("2 attempts" in ended.error) is gave_up
    assert ended.init_image is not None
    assert ended.init_image.blob_key == key  # the echo stays
    assert work.uow.state.prediction_blobs.get(prediction_id, set()) == set()
    assert key not in work.blobs.blobs
    work.images.close()
