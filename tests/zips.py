"""ZIP archives built in memory for the archive tests: ordinary ones and deliberately broken."""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Iterable


def make_zip(entries: Iterable[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of ``(name, bytes)`` entries, in the order given; duplicate names allowed."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; we want them
        with zipfile.ZipFile(buffer, "w", compression=method) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def encrypted(body: bytes) -> bytes:
    """``body`` (a ZIP whose first entry starts it) with that entry marked encrypted, as an
    encrypting tool marks it: the flag bit in the local header (flags at +6) and in the central
    directory header (+8)."""
    marked = bytearray(body)
    marked[6] |= 0x1
    central = marked.index(b"PK\x01\x02")
    marked[central + 8] |= 0x1
    return bytes(marked)


def entries_of(body: bytes) -> dict[str, bytes]:
    """Name -> bytes of every file in a ZIP."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}
