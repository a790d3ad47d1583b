"""The run state machine: every legal status move of a training or prediction, and every
illegal one refused with ``IllegalStatusMove`` (a ``Conflict``), leaving the run unchanged."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from loraforge.domain.errors import Conflict, IllegalStatusMove
from loraforge.domain.work import MOVES, TERMINAL, Prediction, Progress, Run, RunStatus, Training
from tests.integration.repositories import entities

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)
Q, P, S, F, C = (
    RunStatus.QUEUED,
    RunStatus.PROCESSING,
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELED,
)

LEGAL = {(Q, P), (Q, F), (Q, C), (P, P), (P, S), (P, F), (P, C)}
ALL_PAIRS = list(itertools.product(RunStatus, RunStatus))


def training(status: RunStatus = Q) -> Training:
    progress = Progress(step=40, total_steps=100, loss=0.25, eta_seconds=12.0)
    return dataclasses.replace(entities.training("tr-1", "m-1"), status=status, progress=progress)


def prediction(status: RunStatus = Q) -> Prediction:
    return dataclasses.replace(entities.prediction("p-1", ["m-1"]), status=status)


MakeRun = Callable[[RunStatus], Run]
RUNS: list[MakeRun] = [training, prediction]


def test_the_table_is_the_documented_state_machine() -> None:
    assert {(a, b) for a, moves in MOVES.items() for b in moves} == LEGAL
    assert set(MOVES) == set(RunStatus)
    assert all(not MOVES[s] for s in TERMINAL)  # an ended run never moves again


def move(run: Run, to: RunStatus, at: datetime = T1) -> None:
    if to is P:
        run.start(at)
    else:
        run.finish(to, at, "boom" if to is F else None)


@pytest.mark.parametrize("make", RUNS)
@pytest.mark.parametrize(("start", "to"), sorted(LEGAL))
def test_every_legal_move_is_made(make: MakeRun, start: RunStatus, to: RunStatus) -> None:
    run = make(start)
    move(run, to)
    assert run.status is to


@pytest.mark.parametrize("make", RUNS)
@pytest.mark.parametrize(("start", "to"), [p for p in ALL_PAIRS if p not in LEGAL])
def test_every_illegal_move_is_refused_and_changes_nothing(
    make: MakeRun, start: RunStatus, to: RunStatus
) -> None:
    run = make(start)
    before = copy.deepcopy(run)
    with pytest.raises(IllegalStatusMove) as refused:
        move(run, to)
    assert isinstance(refused.value, Conflict)  # answered 409 by its base class
    expected = "already_finished" if start.terminal else "illegal_status_move"
    assert refused.value.code == expected
    assert run == before


def test_an_ended_run_says_what_it_ended_as() -> None:
    run = training(C)
    with pytest.raises(IllegalStatusMove, match=r"^The training already finished \(canceled\)\.$"):
        run.finish(F, T1)
    with pytest.raises(IllegalStatusMove, match="prediction already finished"):
        prediction(S).start(T1)


def test_finish_only_takes_an_ending() -> None:
    run = training(P)
    with pytest.raises(IllegalStatusMove, match=r"^processing does not end a training"):
        run.finish(P, T1)  # a legal move, but start's, not an ending
    with pytest.raises(IllegalStatusMove, match="cannot move from processing to queued"):
        run.finish(Q, T1)
    assert (run.status, run.finished_at) == (P, None)


def test_start_stamps_the_first_start_and_a_takeover_keeps_it() -> None:
    run = prediction(Q)
    run.start(T1)
    assert (run.started_at, run.finished_at) == (T1, None)
    run.start(T2)  # a worker takes over the job of one that died
    assert (run.status, run.started_at) == (P, T1)


def test_success_stamps_the_end_and_completes_the_progress() -> None:
    run = training(P)
    run.finish(S, T2)
    assert (run.finished_at, run.error) == (T2, None)
    assert run.progress == Progress(step=100, total_steps=100, loss=0.25, eta_seconds=0.0)
    done = prediction(P)
    done.finish(S, T2)
    assert done.progress == Progress(step=20, total_steps=20, loss=None, eta_seconds=0.0)


@pytest.mark.parametrize("ending", [F, C])
def test_failure_and_cancel_keep_the_progress_reached(ending: RunStatus) -> None:
    run = training(P)
    run.finish(ending, T2, "why" if ending is F else None)
    assert (run.status, run.finished_at) == (ending, T2)
    assert run.error == ("why" if ending is F else None)
    assert run.progress == Progress(step=40, total_steps=100, loss=0.25, eta_seconds=12.0)


def test_a_queued_run_can_fail_before_it_starts() -> None:
    run = prediction(Q)  # its job ran out of attempts before a worker began it
    run.finish(F, T2, "gave up")
    assert (run.status, run.started_at, run.finished_at, run.error) == (F, None, T2, "gave up")


def test_cancel_request_of_a_queued_training_cancels_it_at_once() -> None:
    run = training(Q)
    run.request_cancel(T1)
    assert (run.status, run.cancel_requested, run.finished_at) == (C, True, T1)


def test_cancel_request_of_a_processing_training_flags_it_for_its_worker() -> None:
    run = training(P)
    run.request_cancel(T1)
    assert (run.status, run.cancel_requested, run.finished_at) == (P, True, None)
    run.finish(C, T2)  # the worker saw the flag and stopped
    assert (run.status, run.finished_at) == (C, T2)


@pytest.mark.parametrize("ended", sorted(TERMINAL))
def test_cancel_request_of_an_ended_training_is_refused(ended: RunStatus) -> None:
    run = training(ended)
    with pytest.raises(IllegalStatusMove) as refused:
        run.request_cancel(T1)
    assert refused.value.code == "already_finished"
    assert refused.value.message == f"The training already finished ({ended.value})."
    assert run.cancel_requested is False
