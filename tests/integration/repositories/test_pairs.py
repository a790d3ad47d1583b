"""TrainingPairRepository: a model's pairs, replaced as a whole and listed in order."""

from __future__ import annotations

import pytest

from loraforge.domain.entities import TrainingPair
from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import model, read, seed, write


@pytest.fixture(autouse=True)
def models(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(uow, lambda tx: tx.models.add(model("m-1")), lambda tx: tx.models.add(model("m-2")))


def test_pairs_are_replaced_and_listed_in_order(uow: UnitOfWorkFactory) -> None:
    first = [TrainingPair("img-2", "img-1", "make it red"), TrainingPair("img-1", "img-3", "b")]
    second = [TrainingPair("img-9", "img-8", "only this one")]

    write(
        uow,
        lambda tx: tx.pairs.replace("m-1", first),
        lambda tx: tx.pairs.replace("m-2", second),
    )
    assert read(uow, lambda tx: tx.pairs.list("m-1")) == first

    write(uow, lambda tx: tx.pairs.replace("m-1", second + first))
    assert read(uow, lambda tx: tx.pairs.list("m-1")) == second + first

    write(uow, lambda tx: tx.pairs.replace("m-1", []))
    assert read(uow, lambda tx: tx.pairs.list("m-1")) == []
    assert read(uow, lambda tx: tx.pairs.list("m-2")) == second
    assert read(uow, lambda tx: tx.pairs.list("m-missing")) == []
