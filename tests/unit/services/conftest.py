from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.services.work_world import WorkWorld, make_world


@pytest.fixture
def work(tmp_path: Path) -> Iterator[WorkWorld]:
    """The trainings' and predictions' world of fakes (``work_world``)."""
    built = make_world(tmp_path)
    yield built
    built.images.close()
