"""The lifecycle events a run may name, and when a training's progress is announced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loraforge.domain.errors import InvalidInput
from loraforge.domain.events import (
    PREDICTION_EVENTS,
    TRAINING_EVENTS,
    ProgressThrottle,
    chosen_events,
)

URL = "https://hooks.example/x"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_not_naming_events_keeps_the_default() -> None:
    assert chosen_events(None, TRAINING_EVENTS, webhook_url=URL) is None
    assert chosen_events(None, TRAINING_EVENTS, webhook_url=None) is None


def test_named_events_are_kept_once_each_in_lifecycle_order() -> None:
    named = ["training.succeeded", "training.started", "training.succeeded"]

    assert chosen_events(named, TRAINING_EVENTS, webhook_url=URL) == [
        "training.started",
        "training.succeeded",
    ]
    assert chosen_events(PREDICTION_EVENTS, PREDICTION_EVENTS, webhook_url=URL) == list(
        PREDICTION_EVENTS
    )


@pytest.mark.parametrize(
    ("named", "known", "url", "says"),
    [
        (["training.bogus"], TRAINING_EVENTS, URL, "Unknown webhook events: training.bogus"),
        (["prediction.started"], TRAINING_EVENTS, URL, "prediction.started"),  # wrong kind
        (["training.progress"], PREDICTION_EVENTS, URL, "training.progress"),
        ([], TRAINING_EVENTS, URL, "names no event"),
        (["training.started"], TRAINING_EVENTS, None, "needs a webhookUrl"),
    ],
)
def test_a_bad_choice_is_refused_naming_the_field(
    named: list[str], known: tuple[str, ...], url: str | None, says: str
) -> None:
    with pytest.raises(InvalidInput, match=says) as refused:
        chosen_events(named, known, webhook_url=url)
    assert refused.value.field == "webhookEvents"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_progress_is_announced_per_tenth_of_the_steps_and_per_30_seconds() -> None:
    throttle = ProgressThrottle(total_steps=100, last_step=0, last_at=T0)

    assert not throttle.due(9, at(60))  # under a tenth of the steps
    assert not throttle.due(10, at(29))  # a tenth, but under 30 s
    assert throttle.due(10, at(30))
    assert not throttle.due(19, at(90))
    assert throttle.due(20, at(60))  # a tenth and 30 s since the last one
    assert not throttle.due(40, at(89))
    assert throttle.due(41, at(90))


def test_the_last_step_is_left_to_the_final_event() -> None:
    throttle = ProgressThrottle(total_steps=10, last_step=0, last_at=T0)

    assert not throttle.due(10, at(600))


def test_a_short_training_is_announced_per_step_at_most() -> None:
    throttle = ProgressThrottle(total_steps=4, last_step=0, last_at=T0)

    assert throttle.due(1, at(30))
    assert not throttle.due(1, at(90))  # the same step twice: not again
    assert throttle.due(2, at(90))


def test_a_resumed_training_counts_from_where_it_resumed() -> None:
    throttle = ProgressThrottle(total_steps=100, last_step=50, last_at=T0)

    assert not throttle.due(55, at(40))
    assert throttle.due(60, at(40))
