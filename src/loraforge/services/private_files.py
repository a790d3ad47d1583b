"""Values kept in small private files of the data directory (the development key, the
link-signing secret): made once, readable by their owner only, read back on every start."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The value stored at ``path``; when there is none, ``make()``'s, stored with mode 0600.
    The file is created exclusively, so two processes starting at once cannot both write it."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value
