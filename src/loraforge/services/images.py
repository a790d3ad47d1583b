"""Images of every kind: ingest, replace, read, list, delete.

Writes go blob first, then the row in one transaction; when the transaction fails the blobs it
created are removed again. The per-model count limit is checked inside the write transaction
with the model row locked, so it holds under concurrency on SQLite and PostgreSQL.

Images of some origins (Runware: deleted 30 days after the last use) record their last use on
every read and use; ``expire_unused`` is what the retention sweep calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, TypedDict

from loraforge.domain.entities import (
    ALL_FORMATS,
    Image,
    ImageFormat,
    ImageKind,
    ImageVariant,
    Limits,
    Page,
    Principal,
    ProcessedImage,
    StoredBlob,
)
from loraforge.domain.errors import Conflict, LimitReached, NotFound
from loraforge.ports import (
    DUPLICATE_TASK,
    BlobStore,
    Clock,
    IdFactory,
    ImageProcessor,
    UnitOfWork,
    UnitOfWorkFactory,
    UrlFetcher,
)
from loraforge.services.paging import PageRequest

_Writer = Callable[[UnitOfWork], None]
LIMITED_KINDS = frozenset({ImageKind.TRAINING, ImageKind.REFERENCE})
MAX_NAME = 255
# Reads record a use at most this often per image: retention counts in days, and a read should
# not turn into a write every time.
USE_RESOLUTION = timedelta(minutes=1)
TASK_CONFLICT = "task_conflict"


@dataclass(frozen=True)
class Upload:
    """Bytes from a client: a seekable stream positioned at the start, and its file name."""

    stream: BinaryIO
    name: str | None = None


@dataclass(frozen=True)
class TaskKey:
    """A client-chosen task id (Runware ``taskUUID``): one image per id, per account and scope.

    ``fingerprint`` identifies what the task asked for; the same id with another fingerprint is
    refused with ``Conflict(code=TASK_CONFLICT)``.
    """

    scope: str
    task_id: str
    fingerprint: str


@dataclass(frozen=True)
class Content:
    stream: BinaryIO
    mime: str
    size: int


def sanitize_name(name: str | None) -> str | None:
    """File names are metadata only: keep the last path part, printable, bounded."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in unicodedata.normalize("NFC", base) if c.isprintable()).strip()
    return clean[:MAX_NAME] or None


@dataclass
class _Blobs:
    original: StoredBlob
    display: StoredBlob
    thumbnail: StoredBlob

    def all(self) -> list[StoredBlob]:
        return [self.original, self.display, self.thumbnail]


class ImageService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        blobs: BlobStore,
        processor: ImageProcessor,
        fetcher: UrlFetcher,
        clock: Clock,
        new_id: IdFactory,
        limits: Limits,
        decode_slots: int,
        track_use: frozenset[str] = frozenset(),
    ) -> None:
        """``track_use``: origins whose images record their last use (fetch, task use)."""
        self._uow = uow
        self._blobs = blobs
        self._processor = processor
        self._fetcher = fetcher
        self._clock = clock
        self._new_id = new_id
        self._limits = limits
        self._track_use = track_use
        # Decoding is CPU- and memory-heavy: bound how many run at once.
        # Decoding is CPU- and memory-heavy. A small dedicated pool both bounds how many run at
        # once and keeps them on the same few threads: glibc gives every thread that decodes a
        # malloc arena of its own and never returns it, so decoding on the server's many request
        # threads grew RSS by ~60 MB per thread (benchmarks/ingest.py).
        self._decoder = ThreadPoolExecutor(decode_slots, thread_name_prefix="decode")

    # --- writes -------------------------------------------------------------------------

    def ingest(
        self,
        who: Principal,
        upload: Upload,
        *,
        kind: ImageKind,
        model_id: str | None,
        allowed: frozenset[ImageFormat],
        origin: str = "native",
    ) -> Image:
        return self._ingest(
            who, upload, kind=kind, model_id=model_id, allowed=allowed, origin=origin, task=None
        )

    def ingest_once(
        self,
        who: Principal,
        task: TaskKey,
        source: Upload | str,
        *,
        kind: ImageKind,
        allowed: frozenset[ImageFormat],
        origin: str,
    ) -> Image:
        """Ingest ``source`` (bytes, or a URL to fetch) at most once per task id; model-less.

        A repeated id with the same fingerprint returns the first image (a use of it), also when
        both arrive at once: the receipt is written in the image's own transaction, so the
        second of two concurrent writers rolls back and replays the first result.
        """
        replayed = self._replay(who, task)
        if replayed is not None:
            return replayed
        try:
            if isinstance(source, str):
                with self._fetch(source) as fetched:
                    return self._ingest(
                        who,
                        fetched,
                        kind=kind,
                        model_id=None,
                        allowed=allowed,
                        origin=origin,
                        task=task,
                    )
            return self._ingest(
                who, source, kind=kind, model_id=None, allowed=allowed, origin=origin, task=task
            )
        except Conflict as exc:
            if exc.code != DUPLICATE_TASK:
                raise
            replayed = self._replay(who, task)
            if replayed is None:  # the receipt that conflicted is committed: never None
                raise
            return replayed

    def _ingest(
        self,
        who: Principal,
        upload: Upload,
        *,
        kind: ImageKind,
        model_id: str | None,
        allowed: frozenset[ImageFormat],
        origin: str,
        task: TaskKey | None,
    ) -> Image:
        if model_id is not None:
            self._check_room(who, model_id, kind)  # fail fast, before decoding
        processed = self._process(upload.stream, allowed)
        blobs = self._store(upload.stream, processed)
        now = self._clock.now()
        image = Image(
            id=self._new_id(),
            account_id=who.account_id,
            model_id=model_id,
            kind=kind,
            name=sanitize_name(upload.name),
            created_at=now,
            last_used_at=now,
            origin=origin,
            **_content(processed, blobs),
        )

        def write(uow: UnitOfWork) -> None:
            if model_id is not None:
                self._lock_room(uow, who, model_id, kind)
            uow.images.add(image)
            if task is not None:
                uow.receipts.add(
                    who.account_id,
                    task.scope,
                    task.task_id,
                    fingerprint=task.fingerprint,
                    result={"imageId": image.id},
                    at=now,
                )

        self._commit(write, blobs, upload.stream, processed)
        return image

    def prepare_output(
        self, *, account_id: str, model_id: str, prediction_id: str, data: bytes, name: str
    ) -> Image:
        """Store a generated image's blobs and return its (not yet committed) Image; the
        caller adds it inside its own transaction, or calls ``discard`` on failure."""
        stream = io.BytesIO(data)
        processed = self._process(stream, ALL_FORMATS)
        blobs = self._store(stream, processed)
        now = self._clock.now()
        return Image(
            id=self._new_id(),
            account_id=account_id,
            model_id=model_id,
            kind=ImageKind.OUTPUT,
            name=name,
            created_at=now,
            last_used_at=now,
            prediction_id=prediction_id,
            **_content(processed, blobs),
        )

    def discard(self, images: Iterable[Image]) -> None:
        """Remove the blobs of prepared images that were never committed."""
        keys: set[str] = set()
        for image in images:
            keys |= image.blob_keys()
        self._release(keys)

    def ingest_url(
        self,
        who: Principal,
        url: str,
        *,
        kind: ImageKind,
        model_id: str | None,
        allowed: frozenset[ImageFormat],
        origin: str = "native",
    ) -> Image:
        if model_id is not None:
            self._check_room(who, model_id, kind)
        with self._fetch(url) as upload:
            return self.ingest(
                who, upload, kind=kind, model_id=model_id, allowed=allowed, origin=origin
            )

    @contextlib.contextmanager
    def _fetch(self, url: str) -> Iterator[Upload]:
        stream = self._fetcher.fetch(url, max_bytes=self._limits.max_request_bytes)
        with stream:
            name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            yield Upload(stream=stream, name=name)

    def replace(
        self,
        who: Principal,
        image_id: str,
        upload: Upload,
        *,
        allowed: frozenset[ImageFormat],
        model_id: str | None = None,
        kind: ImageKind | None = None,
    ) -> Image:
        """New bytes for an existing image: same id, kind and model."""
        current = self._get_scoped(who, image_id, model_id=model_id, kind=kind)
        processed = self._process(upload.stream, allowed)
        blobs = self._store(upload.stream, processed)
        old_keys = current.blob_keys()
        image = dataclasses.replace(current, **_content(processed, blobs))
        image.name = sanitize_name(upload.name) or current.name
        image.last_used_at = self._clock.now()

        def write(uow: UnitOfWork) -> None:
            if uow.images.get(who.account_id, image_id) is None:
                raise NotFound(f"No image {image_id}.")
            uow.images.update(image)

        self._commit(write, blobs, upload.stream, processed)
        self._release(old_keys - image.blob_keys())
        return image

    def delete(
        self,
        who: Principal,
        image_id: str,
        *,
        model_id: str | None = None,
        kind: ImageKind | None = None,
    ) -> None:
        """Permanent: the row goes now, and its bytes unless another image shares them."""
        with self._uow(write=True) as uow:
            image = uow.images.get(who.account_id, image_id)
            if image is None or not _matches(image, model_id, kind):
                raise NotFound(f"No image {image_id}.")
            uow.images.delete(image_id)
            uow.commit()
        self._release(image.blob_keys())

    # --- reads --------------------------------------------------------------------------

    def get(
        self,
        who: Principal,
        image_id: str,
        *,
        model_id: str | None = None,
        kind: ImageKind | None = None,
    ) -> Image:
        """An image of the account; reading it is a use (see ``record_use``)."""
        return self.record_use(self._get_scoped(who, image_id, model_id=model_id, kind=kind))

    def list_for_model(
        self, who: Principal, model_id: str, *, kinds: Iterable[ImageKind], page: PageRequest
    ) -> Page[Image]:
        with self._uow() as uow:
            if uow.models.get(who.account_id, model_id) is None:
                raise NotFound(f"No model {model_id}.")
            items, total = uow.images.list_for_model(
                model_id, kinds=kinds, offset=page.offset, limit=page.page_size
            )
        return Page(items=items, total=total, page_num=page.page_num, page_size=page.page_size)

    def get_for_link(self, image_id: str) -> Image:
        """For signed links: the signature, checked by the caller, is the authorisation."""
        with self._uow() as uow:
            image = uow.images.get_unscoped(image_id)
        if image is None:
            raise NotFound(f"No image {image_id}.")
        return self.record_use(image)

    def record_use(self, image: Image) -> Image:
        """Note that ``image`` was used now (fetched, read, or used in a task) when its origin
        keeps images by last use; at most once per ``USE_RESOLUTION``. Returns it updated."""
        if image.origin not in self._track_use:
            return image
        now = self._clock.now()
        if now - image.last_used_at < USE_RESOLUTION:
            return image
        with self._uow(write=True) as uow:
            uow.images.touch(image.id, now)
            uow.commit()
        return dataclasses.replace(image, last_used_at=now)

    def expire_unused(self, origin: str, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` images of ``origin`` (every account) whose last use is before
        ``before``, with their bytes unless shared; returns how many were deleted. An image used
        while this runs is kept."""
        with self._uow() as uow:
            candidates = uow.images.list_unused(origin, before=before, limit=limit)
        if not candidates:
            return 0
        deleted: list[Image] = []
        with self._uow(write=True) as uow:
            for image in candidates:
                if uow.images.delete_unused(image.id, before=before):
                    deleted.append(image)
            uow.commit()
        self._release({key for image in deleted for key in image.blob_keys()})
        return len(deleted)

    def open(self, image: Image, variant: ImageVariant) -> Content:
        key, mime = {
            ImageVariant.ORIGINAL: (image.original_key, image.format.mime),
            ImageVariant.DISPLAY: (image.display_key, image.display_mime),
            ImageVariant.THUMBNAIL: (image.thumbnail_key, image.thumbnail_mime),
        }[variant]
        return Content(stream=self._blobs.open(key), mime=mime, size=self._blobs.size(key))

    def read_original(self, image: Image) -> bytes:
        with self._blobs.open(image.original_key) as stream:
            return stream.read()

    # --- helpers ------------------------------------------------------------------------

    def _replay(self, who: Principal, task: TaskKey) -> Image | None:
        """The image a task id already produced, or None when the id is new."""
        with self._uow() as uow:
            receipt = uow.receipts.get(who.account_id, task.scope, task.task_id)
            if receipt is None:
                return None
            fingerprint, result = receipt
            if fingerprint != task.fingerprint:
                raise Conflict(
                    "This task id was already used for another request.", code=TASK_CONFLICT
                )
            image = uow.images.get(who.account_id, str(result.get("imageId")))
        if image is None:
            raise Conflict(
                "This task id was already used; its image no longer exists.", code=TASK_CONFLICT
            )
        return self.record_use(image)

    def _get_scoped(
        self, who: Principal, image_id: str, *, model_id: str | None, kind: ImageKind | None
    ) -> Image:
        with self._uow() as uow:
            image = uow.images.get(who.account_id, image_id)
        if image is None or not _matches(image, model_id, kind):
            raise NotFound(f"No image {image_id}.")
        return image

    def _check_room(self, who: Principal, model_id: str, kind: ImageKind) -> None:
        with self._uow() as uow:
            self._room(uow, who, model_id, kind, lock=False)

    def _lock_room(self, uow: UnitOfWork, who: Principal, model_id: str, kind: ImageKind) -> None:
        self._room(uow, who, model_id, kind, lock=True)

    def _room(
        self, uow: UnitOfWork, who: Principal, model_id: str, kind: ImageKind, *, lock: bool
    ) -> None:
        if uow.models.get(who.account_id, model_id, lock=lock) is None:
            raise NotFound(f"No model {model_id}.")
        limit = self._limits.max_images_per_type
        if kind in LIMITED_KINDS and uow.images.count_for_model(model_id, kind) >= limit:
            raise LimitReached(f"The model already has {limit} images of this type.")

    def _process(self, stream: BinaryIO, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        def decode() -> ProcessedImage:
            stream.seek(0)
            return self._processor.process(stream, allowed=allowed)

        return self._decoder.submit(decode).result()

    def close(self) -> None:
        self._decoder.shutdown(wait=True)

    def _store(self, stream: BinaryIO, processed: ProcessedImage) -> _Blobs:
        stored: list[StoredBlob] = []
        try:
            stream.seek(0)
            stored.append(self._blobs.put_file(stream))
            stored.append(self._blobs.put_bytes(processed.display))
            stored.append(self._blobs.put_bytes(processed.thumbnail))
        except BaseException:
            self._discard(stored)
            raise
        return _Blobs(*stored)

    def _commit(
        self, write: _Writer, blobs: _Blobs, stream: BinaryIO, processed: ProcessedImage
    ) -> None:
        try:
            with self._uow(write=True) as uow:
                write(uow)
                uow.commit()
        except BaseException:
            self._discard(blobs.all())
            raise
        self._restore_if_swept(blobs, stream, processed)

    def _restore_if_swept(self, blobs: _Blobs, stream: BinaryIO, processed: ProcessedImage) -> None:
        # A concurrent delete of an image with identical bytes may have removed a shared blob
        # between our write and our commit: write it again so no row points at nothing.
        sources: list[tuple[StoredBlob, BinaryIO]] = [
            (blobs.original, stream),
            (blobs.display, io.BytesIO(processed.display)),
            (blobs.thumbnail, io.BytesIO(processed.thumbnail)),
        ]
        for blob, source in sources:
            try:
                self._blobs.size(blob.key)
            except NotFound:
                source.seek(0)
                self._blobs.put_file(source)

    def _discard(self, stored: Iterable[StoredBlob]) -> None:
        self._release({b.key for b in stored if b.created})

    def _release(self, keys: set[str]) -> None:
        """Remove blobs that no row references any more."""
        if not keys:
            return
        with self._uow() as uow:
            still_used = uow.images.referenced_blob_keys(keys)
        for key in keys - still_used:
            self._blobs.delete(key)


class _ContentFields(TypedDict):
    format: ImageFormat
    width: int
    height: int
    size_bytes: int
    sha256: str
    original_key: str
    display_key: str
    display_mime: str
    thumbnail_key: str
    thumbnail_mime: str


def _content(processed: ProcessedImage, blobs: _Blobs) -> _ContentFields:
    """The fields of an Image that describe its bytes."""
    return _ContentFields(
        format=processed.format,
        width=processed.width,
        height=processed.height,
        size_bytes=blobs.original.size,
        sha256=blobs.original.key,
        original_key=blobs.original.key,
        display_key=blobs.display.key,
        display_mime=processed.display_mime,
        thumbnail_key=blobs.thumbnail.key,
        thumbnail_mime=processed.thumbnail_mime,
    )


def _matches(image: Image, model_id: str | None, kind: ImageKind | None) -> bool:
    return (model_id is None or image.model_id == model_id) and (kind is None or image.kind == kind)
