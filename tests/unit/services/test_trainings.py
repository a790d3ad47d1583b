"""Trainings as use cases over fakes: start (a frozen manifest, its job committed with it, then
handed to the queue), refusals that leave nothing behind, cancel, soft delete, and a worker's
run to success, cancel, failure or giving up, each ending with its status move and webhook."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from loraforge.domain.captions import TrainingWords
from loraforge.domain.errors import (
    Conflict,
    DomainError,
    IllegalStatusMove,
    InvalidInput,
    MlUnavailable,
    NotFound,
    Unavailable,
)
from loraforge.domain.work import JobState, Progress, RunStatus, TrainingSpeed
from tests.unit.services.work_world import HOOK, LEASE_S, STRANGER, WHO, WorkWorld, make_world

# --- start ------------------------------------------------------------------------------


def test_start_queues_a_frozen_training_and_hands_it_over_after_the_commit(
    work: WorkWorld,
) -> None:
    work.model("m-1", images=2)

    training = work.start("m-1", strength=3, webhook_url=HOOK)

    assert work.training(training.id) == training
    assert training.status is RunStatus.QUEUED
    trigger = training.trigger_word
    assert re.fullmatch(r"[A-Z][A-Z0-9]{6}", trigger)
    manifest = training.manifest
    assert manifest["baseModel"] == "tiny"
    assert [i["id"] for i in manifest["images"]] == ["m-1-img-0", "m-1-img-1"]  # upload order
    assert {i["caption"] for i in manifest["images"]} == {f"a photo of {trigger}, a caption"}
    assert training.progress == Progress(total_steps=manifest["hyperparameters"]["steps"])
    state = work.uow.state
    assert state.training_blobs[training.id] == {i["displayKey"] for i in manifest["images"]}
    (job,) = state.jobs.values()
    assert (job.subject_id, job.state) == (training.id, JobState.QUEUED)
    assert work.queue.submitted == [training.id]
    assert work.queue.committed_at_submit == [True]


def test_stronger_training_means_more_optimisation(work: WorkWorld) -> None:
    work.model("m-1")
    weak = work.start("m-1", strength=0).manifest["hyperparameters"]
    strong = work.start("m-1", strength=10).manifest["hyperparameters"]
    assert strong["steps"] > weak["steps"]
    assert strong["learning_rate"] > weak["learning_rate"]


@pytest.mark.parametrize(
    ("model_id", "options", "error", "code"),
    [
        ("m-empty", {}, Conflict, "no_training_images"),
        ("m-missing", {}, NotFound, "not_found"),
        ("m-1", {"webhook_url": "ftp://hooks.example/x"}, InvalidInput, "invalid_request"),
        ("m-1", {"strength": 11}, InvalidInput, "invalid_request"),
    ],
)
def test_a_refused_start_leaves_nothing_and_submits_nothing(
    work: WorkWorld,
    model_id: str,
    options: dict[str, Any],
    error: type[DomainError],
    code: str,
) -> None:
    work.model("m-1")
    work.model("m-empty", images=0)
    with pytest.raises(error) as refused:
        work.start(model_id, **options)
    assert refused.value.code == code
    assert (work.uow.state.trainings, work.uow.state.jobs) == ({}, {})
    assert work.queue.submitted == []


def test_the_training_s_words_make_every_caption_and_are_frozen(work: WorkWorld) -> None:
    work.model("m-1", images=2)
    words = TrainingWords(trigger="ohwx", class_word=" young  woman ", template="{trigger} {class}")

    training = work.start("m-1", words=words)

    assert training.trigger_word == "ohwx"
    manifest = training.manifest
    assert (manifest["triggerWord"], manifest["classWord"], manifest["captionTemplate"]) == (
        "ohwx",
        "young woman",
        "{trigger} {class}",
    )
    assert [(i["caption"], i["imageCaption"], i["captionSource"]) for i in manifest["images"]] == [
        ("ohwx young woman", "a caption", "user")
    ] * 2
    work.run_jobs()
    (spec,) = work.trainer.specs
    assert [s.caption for s in spec.samples] == ["ohwx young woman"] * 2


def test_without_words_the_default_template_and_a_random_trigger_are_used(
    work: WorkWorld,
) -> None:
    work.model("m-1")

    manifest = work.start("m-1").manifest

    assert (manifest["classWord"], manifest["captionTemplate"]) == (
        "",
        "a photo of {trigger} {class}, {caption}",
    )
    assert [(i["imageCaption"], i["captionSource"]) for i in manifest["images"]] == [
        ("a caption", "user")
    ]


@pytest.mark.parametrize(
    ("words", "field"),
    [
        (TrainingWords(trigger="two words"), "triggerWord"),
        (TrainingWords(class_word="x" * 65), "classWord"),
        (TrainingWords(template="{name}"), "captionTemplate"),
    ],
)
def test_bad_words_refuse_the_start_naming_the_field_and_leave_nothing(
    work: WorkWorld, words: TrainingWords, field: str
) -> None:
    work.model("m-1")
    with pytest.raises(InvalidInput) as refused:
        work.start("m-1", words=words)
    assert refused.value.field == field
    assert (work.uow.state.trainings, work.uow.state.jobs) == ({}, {})
    assert work.queue.submitted == []


def test_another_account_s_model_is_not_found(work: WorkWorld) -> None:
    work.model("m-1")
    with pytest.raises(NotFound):
        work.trainings.start(STRANGER, "m-1", strength=0, speed=TrainingSpeed.FAST)
    assert work.queue.submitted == []


def test_nothing_is_submitted_when_the_commit_fails(work: WorkWorld) -> None:
    work.model("m-1")
    work.uow.fail_commits(Unavailable("The database is not available."))
    with pytest.raises(Unavailable):
        work.start("m-1")
    assert work.queue.submitted == []


def test_without_workers_that_can_run_it_a_training_is_refused(tmp_path: Path) -> None:
    work = make_world(tmp_path, unrunnable="no ML extra")
    work.model("m-1")
    with pytest.raises(MlUnavailable, match="no ML extra"):
        work.start("m-1")
    assert work.uow.state.trainings == {}
    assert work.queue.submitted == []
    work.images.close()


def test_an_exclusive_start_waits_for_the_model_s_training_to_end(work: WorkWorld) -> None:
    work.model("m-1")
    first = work.start("m-1", exclusive=True)
    with pytest.raises(Conflict) as busy:
        work.start("m-1", exclusive=True)
    assert busy.value.code == "already_training"
    work.run_jobs()
    second = work.start("m-1", exclusive=True)
    assert work.queue.submitted == [first.id, second.id]


# --- cancel and delete ------------------------------------------------------------------


def test_cancel_of_a_queued_training_ends_it_at_once(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1")
    work.clock.advance(5)

    canceled = work.trainings.cancel(WHO, "m-1", training.id)

    assert canceled == work.training(training.id)
    assert (canceled.status, canceled.cancel_requested) == (RunStatus.CANCELED, True)
    assert canceled.finished_at == work.clock.now()
    assert work.run_jobs() == 1  # its job is claimed and found ended
    assert work.trainer.specs == []
    (job,) = work.uow.state.jobs.values()
    assert job.state is JobState.DONE


def test_cancel_while_processing_stops_within_one_step(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK)
    steps: list[int] = []

    def on_step(step: int) -> None:
        steps.append(step)
        if step == 3:
            flagged = work.trainings.cancel(WHO, "m-1", training.id)
            assert (flagged.status, flagged.cancel_requested) == (RunStatus.PROCESSING, True)

    work.trainer.step_hook = on_step
    work.run_jobs()

    assert work.training(training.id).status is RunStatus.CANCELED
    assert steps[-1] == 3  # the step after the cancel never ran
    with pytest.raises(Conflict) as refused:
        work.trainings.open_weights(WHO, "m-1", training.id)
    assert refused.value.code == "not_succeeded"
    assert [event for event, _ in work.webhooks()] == ["training.canceled"]


@pytest.mark.parametrize("ending", ["succeeded", "canceled"])
def test_an_ended_training_cannot_be_canceled(work: WorkWorld, ending: str) -> None:
    work.model("m-1")
    training = work.start("m-1")
    if ending == "succeeded":
        work.run_jobs()
    else:
        work.trainings.cancel(WHO, "m-1", training.id)
    before = work.training(training.id)

    with pytest.raises(IllegalStatusMove) as refused:
        work.trainings.cancel(WHO, "m-1", training.id)

    assert isinstance(refused.value, Conflict)
    assert refused.value.code == "already_finished"
    assert refused.value.message == f"The training already finished ({ending})."
    assert work.training(training.id) == before


def test_another_account_cannot_see_or_cancel_a_training(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1")
    for use in (work.trainings.get, work.trainings.cancel, work.trainings.delete):
        with pytest.raises(NotFound):
            use(STRANGER, "m-1", training.id)
    with pytest.raises(NotFound):
        work.trainings.list(STRANGER, "m-1")
    assert work.training(training.id).status is RunStatus.QUEUED


def test_delete_is_soft_and_does_not_cancel(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1")

    work.trainings.delete(WHO, "m-1", training.id)

    with pytest.raises(NotFound):
        work.trainings.get(WHO, "m-1", training.id)
    assert work.trainings.list(WHO, "m-1") == []
    work.run_jobs()
    stored = work.training(training.id)
    assert stored.status is RunStatus.SUCCEEDED
    assert stored.deleted_at is not None


# --- the worker's run -------------------------------------------------------------------


def test_a_training_runs_to_success_with_its_weights_and_webhook(work: WorkWorld) -> None:
    work.model("m-1", images=3)
    training = work.start("m-1", webhook_url=HOOK)
    started = work.clock.now()
    work.trainer.step_hook = lambda step: work.clock.advance(1)

    assert work.run_jobs() == 1

    done = work.trainings.get(WHO, "m-1", training.id)
    total = done.progress.total_steps
    assert done.status is RunStatus.SUCCEEDED
    assert done.progress == Progress(step=total, total_steps=total, loss=1 / total, eta_seconds=0)
    assert (done.started_at, done.finished_at) == (started, work.clock.now())
    assert work.clock.now() > started  # one clock second per step
    assert done.error is None
    assert len(work.trainer.specs[0].samples) == 3
    assert work.trainings.open_weights(WHO, "m-1", training.id).read().startswith(b"fake-lora")
    assert [t.id for t in work.trainings.list(WHO, "m-1")] == [training.id]
    # Signed in the training's final transaction, over its stored weights (the fake trainer's
    # file is not a LoRA the converter reads: it is the only file served).
    receipt = work.uow.state.training_receipts[training.id]
    assert receipt.payload["trainingId"] == training.id
    assert receipt.payload["weights"]["storedSha256"] == done.artifact_key
    assert [f["format"] for f in receipt.payload["weights"]["files"]] == ["diffusers"]
    assert list(work.webhooks()) == [
        (
            "training.succeeded",
            {
                "id": training.id,
                "modelId": "m-1",
                "status": "succeeded",
                "triggerWord": training.trigger_word,
                "error": None,
            },
        )
    ]


def test_a_failing_trainer_fails_the_training_with_its_error(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK)

    def out_of_memory(step: int) -> None:
        if step == 2:
            raise RuntimeError("out of memory")

    work.trainer.step_hook = out_of_memory
    work.run_jobs()

    failed = work.training(training.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error == "Training failed: out of memory"
    assert failed.progress.step == 1  # the progress it reached
    assert failed.artifact_key is None
    assert training.id not in work.uow.state.training_receipts
    ((event, data),) = work.webhooks()
    assert (event, data["status"], data["error"]) == (
        "training.failed",
        "failed",
        "Training failed: out of memory",
    )


def test_a_training_whose_job_ran_out_of_attempts_fails_with_the_reason(
    work: WorkWorld,
) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK)
    work.exhaust_attempts()

    assert work.run_jobs() == 0  # the job was given up on the way

    failed = work.training(training.id)
    assert (failed.status, failed.started_at) == (RunStatus.FAILED, None)  # never begun
    assert failed.error is not None
    assert "2 attempts" in failed.error
    assert [event for event, _ in work.webhooks()] == ["training.failed"]


def test_a_taken_over_training_keeps_its_first_start(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1")
    first_start = work.clock.now()

    def die_after_checkpoint(step: int) -> None:
        if step == 60:  # the fast plan checkpoints every 50 steps
            work.clock.advance(LEASE_S + 1)
            raise KeyboardInterrupt  # the process dies: nothing is written

    work.trainer.step_hook = die_after_checkpoint
    with pytest.raises(KeyboardInterrupt):
        work.worker.run_once()
    assert work.training(training.id).status is RunStatus.PROCESSING
    work.trainer.step_hook = None

    assert work.worker.run_once() is True

    done = work.training(training.id)
    assert (done.status, done.started_at) == (RunStatus.SUCCEEDED, first_start)
    assert done.finished_at == work.clock.now()
    assert work.trainer.started_from == [0, 50]
