"""Streaming stored bytes to clients without loading them whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 256 * 1024


def file_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the stream's bytes, closing it when done or when the client goes away."""
    try:
        while chunk := stream.read(CHUNK):
            yield chunk
    finally:
        stream.close()
