"""Lifecycle webhooks over the world of fakes: which events a run announces, what each carries,
their order (numbered per run), and the default left exactly as it was."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

import pytest

from loraforge.domain.events import PREDICTION_EVENTS, PROGRESS_EVERY, TRAINING_EVENTS, SampleEvent
from loraforge.domain.work import Training, WebhookDelivery
from loraforge.services.run_views import json_ready, training_view
from tests.unit.services.work_world import HOOK, WHO, WorkWorld, request


def bodies(work: WorkWorld) -> list[dict[str, Any]]:
    return [json.loads(d.body) for d in work.deliveries()]


def legacy_body(delivery: WebhookDelivery, data: dict[str, Any]) -> str:
    """Today's payload, byte for byte, written as it was before lifecycle events."""
    return json.dumps(
        {"type": delivery.event, "timestamp": delivery.created_at.isoformat(), "data": data},
        separators=(",", ":"),
    )


def test_by_default_a_training_sends_one_webhook_in_today_s_payload(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK)
    work.trainer.step_hook = lambda step: work.clock.advance(60)  # progress would be due

    work.run_jobs()

    (delivery,) = work.deliveries()
    assert delivery.event == "training.succeeded"
    assert delivery.body == legacy_body(
        delivery,
        {
            "id": training.id,
            "modelId": "m-1",
            "status": "succeeded",
            "triggerWord": training.trigger_word,
            "error": None,
        },
    )
    assert (delivery.run_id, delivery.sequence) == (training.id, 1)


def test_by_default_a_prediction_sends_one_webhook_in_today_s_payload(work: WorkWorld) -> None:
    trained = work.trained()
    prediction = work.predictions.create(WHO, request(trained, webhook_url=HOOK, seed=7))

    work.run_jobs()

    (delivery,) = work.deliveries()
    done = work.prediction(prediction.id)
    assert delivery.body == legacy_body(
        delivery,
        {
            "id": prediction.id,
            "status": "succeeded",
            "outputImageIds": done.output_image_ids,
            "seed": 7,
            "error": None,
        },
    )


def test_a_queued_cancel_sends_nothing_by_default(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK)

    work.trainings.cancel(WHO, "m-1", training.id)

    assert work.deliveries() == []


def test_every_training_event_in_order_with_the_run_as_presented(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK, webhook_events=list(TRAINING_EVENTS))
    total = training.progress.total_steps
    assert total >= 10

    def step(n: int) -> None:
        work.clock.advance(20)
        if n == 3:  # a fake sample renderer stores a sample and announces it
            with work.uow(write=True) as tx:
                current = tx.trainings.get(training.id)
                assert current is not None
                work.events.sample(tx, current, SampleEvent(2, "a photo of ohwx", 42, "img-s"))
                tx.commit()

    work.trainer.step_hook = step
    work.run_jobs()

    sent = bodies(work)
    types = [b["type"] for b in sent]
    assert types[0] == "training.started"
    assert types[-1] == "training.succeeded"
    assert "training.sample" in types
    progress = [b for b in sent if b["type"] == "training.progress"]
    assert len(progress) >= 2
    assert set(types) == {"training.started", "training.progress", "training.sample",
                          "training.succeeded"}  # fmt: skip
    assert [b["sequence"] for b in sent] == list(range(1, len(sent) + 1))
    assert {d.run_id for d in work.deliveries()} == {training.id}
    steps = [b["step"] for b in progress]
    assert all(b - a >= total / 10 for a, b in zip([0, *steps], steps, strict=False))
    # From the start to the last progress event, 30 s at least between two.
    stamps = [datetime.fromisoformat(b["timestamp"]) for b in sent[:-1] if "sample" not in b]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= PROGRESS_EVERY for gap in gaps)
    first = progress[0]
    assert first["progress"] == round(first["step"] / total, 4)
    assert first["totalSteps"] == total
    assert first["loss"] == pytest.approx(1 / first["step"])
    assert "etaSeconds" in first
    assert first["data"]["progress"]["step"] == first["step"]
    (sample,) = [b for b in sent if b["type"] == "training.sample"]
    assert sample["sample"]["step"] == 2
    assert sample["sample"]["imageId"] == "img-s"
    assert sample["sample"]["image"].startswith("https://lf.example/v1/images/img-s/content?")
    done = work.training(training.id)
    assert sent[-1]["data"] == json_ready(training_view(done))
    assert sent[-1]["data"]["webhookEvents"] == list(TRAINING_EVENTS)


def test_only_the_named_events_are_sent(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK, webhook_events=["training.succeeded"])
    work.trainer.step_hook = lambda step: work.clock.advance(60)

    work.run_jobs()

    (body,) = bodies(work)
    assert (body["type"], body["sequence"]) == ("training.succeeded", 1)
    assert body["data"]["id"] == training.id
    assert body["data"]["trainingSpeed"] == "fast"  # the run as the API presents it


def test_a_failed_training_is_announced_after_its_start(work: WorkWorld) -> None:
    work.model("m-1")
    work.start("m-1", webhook_url=HOOK, webhook_events=["training.started", "training.failed"])

    def broken(step: int) -> None:
        raise RuntimeError("out of memory")

    work.trainer.step_hook = broken
    work.run_jobs()

    sent = bodies(work)
    assert [(b["type"], b["sequence"]) for b in sent] == [
        ("training.started", 1),
        ("training.failed", 2),
    ]
    assert sent[1]["data"]["error"] == "Training failed: out of memory"


def test_a_queued_cancel_is_announced_when_named(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK, webhook_events=["training.canceled"])

    work.trainings.cancel(WHO, "m-1", training.id)
    work.run_jobs()  # the worker finds it ended: nothing more

    (body,) = bodies(work)
    assert (body["type"], body["data"]["status"]) == ("training.canceled", "canceled")


def test_a_running_cancel_is_announced_once(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", webhook_url=HOOK, webhook_events=list(TRAINING_EVENTS))

    def cancel_at_two(step: int) -> None:
        if step == 2:
            work.trainings.cancel(WHO, "m-1", training.id)

    work.trainer.step_hook = cancel_at_two
    work.run_jobs()

    assert [b["type"] for b in bodies(work)] == ["training.started", "training.canceled"]


def test_prediction_events_carry_the_prediction_with_its_output_links(work: WorkWorld) -> None:
    trained: Training = work.trained()
    before = len(work.deliveries())
    prediction = work.predictions.create(
        WHO, request(trained, webhook_url=HOOK, webhook_events=list(PREDICTION_EVENTS))
    )
    work.clock.advance(1)

    work.run_jobs()

    sent = bodies(work)[before:]
    assert [(b["type"], b["sequence"]) for b in sent] == [
        ("prediction.started", 1),
        ("prediction.succeeded", 2),
    ]
    assert sent[0]["data"]["status"] == "processing"
    done = sent[1]["data"]
    assert done["id"] == prediction.id
    assert len(done["outputImages"]) == len(done["outputImageIds"]) == 2
    assert all(link.startswith("https://lf.example/v1/images/") for link in done["outputImages"])
    assert done["webhookEvents"] == list(PREDICTION_EVENTS)
