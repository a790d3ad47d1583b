"""CaptionRunRepository: runs scoped to an account unless asked by id alone (the worker's
reads); an update writes what a run changes and never its owner, model or images."""

from __future__ import annotations

import dataclasses

import pytest

from loraforge.domain.work import Progress, RunStatus
from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import (
    ME,
    OTHER,
    at,
    caption_run,
    model,
    read,
    seed,
    write,
)


@pytest.fixture(autouse=True)
def models(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(uow, lambda tx: tx.models.add(model("m-1")), lambda tx: tx.models.add(model("m-2")))


def test_caption_run_round_trip(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.caption_runs.add(caption_run("cr-1", "m-1")))

    assert read(uow, lambda tx: tx.caption_runs.get("cr-1")) == caption_run("cr-1", "m-1")
    assert read(uow, lambda tx: tx.caption_runs.get("cr-1", account_id=ME)) == caption_run(
        "cr-1", "m-1"
    )
    assert read(uow, lambda tx: tx.caption_runs.get("cr-1", account_id=OTHER)) is None
    assert read(uow, lambda tx: tx.caption_runs.get("cr-missing")) is None


def test_caption_run_update_writes_what_a_run_changes(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.caption_runs.add(caption_run("cr-1", "m-1")))
    finished = dataclasses.replace(
        caption_run("cr-1", "m-1"),
        status=RunStatus.SUCCEEDED,
        progress=Progress(step=2, total_steps=2, loss=None, eta_seconds=0.0),
        captioned=1,
        failed=1,
        error="a note",
        started_at=at(1),
        finished_at=at(2),
    )
    moved = dataclasses.replace(
        finished, account_id=OTHER, model_id="m-2", overwrite=False, image_ids=[], created_at=at(9)
    )

    write(
        uow,
        lambda tx: tx.caption_runs.update(moved),
        lambda tx: tx.caption_runs.update(caption_run("cr-missing", "m-1")),  # no row: nothing
    )

    assert read(uow, lambda tx: tx.caption_runs.get("cr-1")) == finished
    assert read(uow, lambda tx: tx.caption_runs.get("cr-missing")) is None
