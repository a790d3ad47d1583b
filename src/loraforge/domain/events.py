"""Lifecycle events of runs, as webhooks announce them: their names, a run's choice of them
(``webhookEvents``), and how often a training's progress is announced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from loraforge.domain.errors import InvalidInput

TRAINING_EVENTS = (
    "training.started",
    "training.progress",
    "training.sample",
    "training.succeeded",
    "training.failed",
    "training.canceled",
)
PREDICTION_EVENTS = (
    "prediction.started",
    "prediction.succeeded",
    "prediction.failed",
    "prediction.canceled",
)
FIELD = "webhookEvents"

PROGRESS_SHARE = 0.1  # at most one progress event per 10 % of the steps…
PROGRESS_EVERY = timedelta(seconds=30)  # …and per 30 seconds


def chosen_events(
    names: Iterable[str] | None, known: tuple[str, ...], *, webhook_url: str | None
) -> list[str] | None:
    """The events a run announces, in ``known``'s order, each once; ``None`` (not given) keeps
    the default: one webhook when the run ends, in the payload it always had. An unknown or
    missing name is refused naming the ``webhookEvents`` field."""
    if names is None:
        return None
    if not webhook_url:
        raise InvalidInput("webhookEvents needs a webhookUrl to send them to.", field=FIELD)
    wanted = set(names)
    if not wanted:
        raise InvalidInput(
            "webhookEvents names no event: name at least one, or leave it out for the default "
            "(one webhook when the run ends).",
            field=FIELD,
        )
    unknown = sorted(wanted.difference(known))
    if unknown:
        raise InvalidInput(
            f"Unknown webhook events: {', '.join(unknown)}; known: {', '.join(known)}.",
            field=FIELD,
        )
    return [name for name in known if name in wanted]


@dataclass
class ProgressThrottle:
    """Says when a training's progress is worth an event: at least a tenth of the steps since
    the last one, and at least 30 seconds (both counted from the start for the first)."""

    total_steps: int
    last_step: int
    last_at: datetime

    def due(self, step: int, now: datetime) -> bool:
        """True, and remembered as the last event, when ``step`` at ``now`` is announced."""
        if step >= self.total_steps:
            return False  # the end is announced by the run's final event
        if step - self.last_step < max(1.0, self.total_steps * PROGRESS_SHARE):
            return False
        if now - self.last_at < PROGRESS_EVERY:
            return False
        self.last_step, self.last_at = step, now
        return True


@dataclass(frozen=True)
class SampleEvent:
    """A sample image a training rendered at ``step``, stored as image ``image_id``."""

    step: int
    prompt: str
    seed: int
    image_id: str
