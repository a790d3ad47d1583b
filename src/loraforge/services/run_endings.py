"""How a run ends, written once for trainings and predictions: the worker's outcome applied to
the stored row, the status moved by the domain, and the webhook queued in the same transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from loraforge.domain.work import JobKind, Run, RunStatus
from loraforge.ports import Clock, UnitOfWork
from loraforge.services.run_events import RunEvents

R = TypeVar("R", bound=Run)


class RunRows(Protocol[R]):
    """A run repository as the endings use it (``TrainingRepository``, ``PredictionRepository``)."""

    def get(self, run_id: str, /) -> R | None:
        """The stored run by id alone, deleted or not."""
        ...

    def update(self, run: R, /) -> None:
        """Write every field of the run."""
        ...


@dataclass(frozen=True)
class RunKind(Generic[R]):
    """What differs between the endings of trainings and of predictions."""

    job: JobKind  # also names the webhook events: ``training.succeeded``…
    rows: Callable[[UnitOfWork], RunRows[R]]
    carry: Callable[[R, R], None]
    """``carry(stored, result)``: copy what the worker produced onto the stored row."""
    payload: Callable[[R], dict[str, Any]]
    """The default webhook's data about the ended run (a run without ``webhookEvents``)."""


class RunEndings(Generic[R]):
    def __init__(self, kind: RunKind[R], *, events: RunEvents, clock: Clock) -> None:
        self._kind = kind
        self._events = events
        self._clock = clock

    def finish(self, uow: UnitOfWork, result: R, status: RunStatus, error: str | None) -> None:
        """End the run inside the caller's transaction (``JobService.complete``'s)."""
        rows = self._kind.rows(uow)
        # Apply the outcome to the stored row: the client may have soft-deleted it meanwhile.
        run = rows.get(result.id) or result
        self._kind.carry(run, result)
        run.finish(status, self._clock.now(), error)
        rows.update(run)
        self._events.ended(uow, run, f"{self._kind.job.value}.{status.value}", self._kind.payload)

    def give_up(self, uow: UnitOfWork, run_id: str, reason: str) -> None:
        """The run's job ran out of attempts: the run fails with ``reason`` unless it ended."""
        run = self._kind.rows(uow).get(run_id)
        if run is not None and not run.status.terminal:
            self.finish(uow, run, RunStatus.FAILED, reason)
