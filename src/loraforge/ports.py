"""Contracts between the services and the outside world.

Each port is a Protocol; adapters implement them, ``bootstrap`` picks the implementation, tests
use fakes. Nothing here imports an infrastructure library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import BinaryIO, Protocol

from loraforge.domain.entities import (
    Account,
    ApiKey,
    Image,
    ImageFormat,
    ImageKind,
    Model,
    ProcessedImage,
    StoredBlob,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class BlobStore(Protocol):
    """Content-addressed bytes. Keys are the sha256 hex of the content, never user input."""

    def put_file(self, source: BinaryIO) -> StoredBlob:
        """Store the stream's bytes from its current position; atomic; identical bytes once."""
        ...

    def put_bytes(self, data: bytes) -> StoredBlob:
        """Store ``data``; atomic; identical bytes stored once."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Open a stored blob for reading; raises ``NotFound`` when absent."""
        ...

    def size(self, key: str) -> int:
        """Byte size of a stored blob; raises ``NotFound`` when absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove a blob; absent keys are ignored."""
        ...

    def iter_keys(self, *, older_than: datetime) -> Iterator[str]:
        """Keys of blobs last written before ``older_than`` (candidates for the sweep)."""
        ...

    def check(self) -> None:
        """Raise ``Unavailable`` when the store cannot be written and read."""
        ...

    def remove_stale_temp_files(self, *, older_than: datetime) -> int:
        """Remove partial writes left by a crash; return how many were removed."""
        ...


class ImageProcessor(Protocol):
    """Decodes, checks and derives variants from uploaded bytes."""

    def process(self, source: BinaryIO, *, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        """Validate the image in ``source`` (format from magic bytes, pixel cap before decoding,
        full decode) and return its metadata and derived display/thumbnail variants.

        Raises ``UnsupportedFormat`` (not an image of ``allowed``) or ``ImageRejected``.
        Leaves ``source`` at an unspecified position.
        """
        ...


class UrlFetcher(Protocol):
    """Fetches a user-supplied URL safely (SSRF-guarded, byte and time caps)."""

    def fetch(self, url: str, *, max_bytes: int) -> BinaryIO:
        """Return a seekable stream with the body, positioned at 0.

        Raises ``FetchFailed`` for every failure (blocked, refused, timed out, too large).
        """
        ...


class AccountRepository(Protocol):
    def add(self, account: Account) -> None: ...

    def get(self, account_id: str) -> Account | None: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey, *, key_hash: str) -> None: ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def find_by_prefix(self, prefix: str) -> list[tuple[ApiKey, str]]:
        """Keys whose public prefix matches, each with its stored hash."""
        ...

    def list(self) -> list[ApiKey]: ...

    def update(self, key: ApiKey) -> None: ...


class ModelRepository(Protocol):
    def add(self, model: Model) -> None: ...

    def get(self, account_id: str, model_id: str, *, lock: bool = False) -> Model | None:
        """A live (not deleted) model of the account; ``lock`` serialises writers on it."""
        ...

    def list(self, account_id: str, *, offset: int, limit: int) -> tuple[list[Model], int]:
        """Live models, newest first, and their total count."""
        ...

    def update(self, model: Model) -> None: ...


class ImageRepository(Protocol):
    def add(self, image: Image) -> None: ...

    def get(self, account_id: str, image_id: str) -> Image | None:
        """An image of the account, unless its model was deleted."""
        ...

    def get_unscoped(self, image_id: str) -> Image | None:
        """Any visible image, for signed links (the signature is the authorisation)."""
        ...

    def list_for_model(
        self, model_id: str, *, kinds: Iterable[ImageKind], offset: int, limit: int
    ) -> tuple[list[Image], int]:
        """The model's images of those kinds, newest first (stable), and their total count."""
        ...

    def count_for_model(self, model_id: str, kind: ImageKind) -> int: ...

    def update(self, image: Image) -> None: ...

    def delete(self, image_id: str) -> None: ...

    def referenced_blob_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` some image row still references."""
        ...


class UnitOfWork(Protocol):
    """One transaction over all repositories. Leaving without ``commit()`` rolls back."""

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def models(self) -> ModelRepository: ...

    @property
    def images(self) -> ImageRepository: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = False) -> AbstractContextManager[UnitOfWork]:
        """Open a transaction. ``write=True`` takes the write lock up front where the database
        needs it (SQLite ``BEGIN IMMEDIATE``), so writers wait instead of failing."""
        ...

    def check(self) -> None:
        """Raise ``Unavailable`` when the database cannot be reached."""
        ...


IdFactory = Callable[[], str]
