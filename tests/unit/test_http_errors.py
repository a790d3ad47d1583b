"""The HTTP status table is looked up along an error's class hierarchy: a refused status move
is a conflict, whatever its machine code."""

from __future__ import annotations

import pytest

from loraforge.domain.errors import IllegalStatusMove
from loraforge.http.errors import status_for


@pytest.mark.parametrize("code", [None, "already_finished"])
def test_an_illegal_status_move_is_409(code: str | None) -> None:
    assert status_for(IllegalStatusMove("no", code=code)) == 409
