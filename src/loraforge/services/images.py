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
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from loraforge.domain.captions import CaptionSource
from loraforge.domain.entities import (
    Image,
    ImageFormat,
    ImageKind,
    ImageVariant,
    Limits,
    Page,
    Principal,
)
from loraforge.domain.errors import Conflict, NotFound
from loraforge.ports import (
    TASK_CONFLICT,
    BlobStore,
    Clock,
    IdFactory,
    ImageProcessor,
    UnitOfWork,
    UnitOfWorkFactory,
    UrlFetcher,
)
from loraforge.services.captions import caption_fields
from loraforge.services.decode_slots import DecodeSlots
from loraforge.services.fetch_slots import FetchPermit, FetchSlots
from loraforge.services.image_batches import ImageBatches
from loraforge.services.image_bytes import ImageBytes, Upload, sanitize_name
from loraforge.services.image_types import Content, TaskKey
from loraforge.services.input_pictures import InputPictures
from loraforge.services.model_room import ensure_room
from loraforge.services.output_images import OutputImages
from loraforge.services.paging import PageRequest
from loraforge.services.training_image_jobs import TrainingImageJobs

__all__ = ["TASK_CONFLICT", "Content", "ImageService", "TaskKey", "Upload", "sanitize_name"]

# Reads record a use at most this often per image: retention counts in days, and a read should
# not turn into a write every time.
USE_RESOLUTION = timedelta(minutes=1)


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
        fetch_slots: FetchSlots | None = None,
        decode_shares: DecodeSlots | None = None,
        followups: TrainingImageJobs | None = None,
    ) -> None:
        """``track_use``: origins whose images record their last use (fetch, task use).
        ``fetch_slots``: how many URL uploads may run at once (per account, per process).
        ``decode_shares``: each account's share of the ``decode_slots``.
        ``followups``: queues what a stored training image gets (measuring, captioning)."""
        self._uow = uow
        self._blobs = blobs
        self._bytes = ImageBytes(
            uow=uow,
            blobs=blobs,
            processor=processor,
            decode_slots=decode_slots,
            shares=decode_shares,
        )
        self.outputs = OutputImages(bytes_=self._bytes, clock=clock, new_id=new_id)
        self.inputs = InputPictures(
            bytes_=self._bytes,
            fetch=self._fetch,
            admit=self.admit_fetch,
            max_bytes=limits.max_request_bytes,
        )
        self._fetcher = fetcher
        self._clock = clock
        self._new_id = new_id
        self._limits = limits
        self._track_use = track_use
        self._fetch_slots = fetch_slots or FetchSlots(total=16, per_account=4, fetch_timeout_s=10)
        self._followups = followups or TrainingImageJobs()
        self.batches = ImageBatches(
            uow=uow,
            bytes_=self._bytes,
            clock=clock,
            new_id=new_id,
            limits=limits,
            followups=self._followups,
        )

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
        permit: FetchPermit | None = None,
    ) -> Image:
        """Ingest ``source`` (bytes, or a URL to fetch) at most once per task id; model-less.
        A URL needs a fetch slot: ``permit`` (see ``admit_fetch``), else one is taken here.

        A repeated id with the same fingerprint returns the first image (a use of it), also when
        both arrive at once: the receipt is written in the image's own transaction, so the
        second of two concurrent writers rolls back and replays the first result.
        """
        replayed = self._replay(who, task)
        if replayed is not None:
            return replayed
        try:
            if isinstance(source, str):
                with permit or self.admit_fetch(who), self._fetch(source) as fetched:
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
            if exc.code != TASK_CONFLICT:
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
        caption_fields(kind, upload.caption)  # fail fast, before the room check and decoding
        if model_id is not None:
            self._check_room(who, model_id, kind)
        prepared = self.batches.prepare(who, upload, kind, model_id, allowed, origin)
        image, stored = prepared.image, prepared.stored
        runs: list[str] = []

        def write(uow: UnitOfWork) -> None:
            if model_id is not None:
                self._room(uow, who, model_id, kind, lock=True)
            uow.images.add(image)
            if task is not None:
                uow.receipts.add(
                    who.account_id,
                    task.scope,
                    task.task_id,
                    fingerprint=task.fingerprint,
                    result={"imageId": image.id},
                    at=image.created_at,
                )
            runs.extend(self._followups.queue(uow, [image]))

        self._bytes.commit(write, stored, upload.stream)
        self._followups.submit(runs)
        return image

    def ingest_url(
        self,
        who: Principal,
        url: str,
        *,
        kind: ImageKind,
        model_id: str | None,
        allowed: frozenset[ImageFormat],
        origin: str = "native",
        permit: FetchPermit | None = None,
        caption: str | None = None,
    ) -> Image:
        """Fetch ``url`` and ingest it, holding a fetch slot throughout: ``permit`` when the
        caller took one (see ``admit_fetch``), else one taken here."""
        caption_fields(kind, caption)  # before fetching
        with permit or self.admit_fetch(who):
            if model_id is not None:
                self._check_room(who, model_id, kind)
            with self._fetch(url, caption) as upload:
                return self.ingest(
                    who, upload, kind=kind, model_id=model_id, allowed=allowed, origin=origin
                )

    def admit_fetch(self, who: Principal) -> FetchPermit:
        """A fetch slot for one URL upload of ``who``, or ``RateLimited`` (the account's share
        is in use) / ``Unavailable`` (the process's) at once. Entry points take it before they
        hand the upload to a thread, so a refused upload never waits for one."""
        return self._fetch_slots.admit(who.account_id)

    @contextlib.contextmanager
    def _fetch(self, url: str, caption: str | None = None) -> Iterator[Upload]:
        stream = self._fetcher.fetch(url, max_bytes=self._limits.max_request_bytes)
        with stream:
            name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            yield Upload(stream=stream, name=name, caption=caption)

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
        stored = self._bytes.ingest(upload.stream, allowed, account_id=who.account_id)
        old_keys = current.blob_keys()
        image = dataclasses.replace(current, **stored.fields())
        image.name = sanitize_name(upload.name) or current.name
        image.last_used_at = self._clock.now()
        if image.caption_source is CaptionSource.AUTO:  # it described the old picture
            image.caption, image.caption_source = "", CaptionSource.NONE
        runs: list[str] = []

        def write(uow: UnitOfWork) -> None:
            # ``update`` raises NotFound when the image was deleted since it was read.
            uow.images.update(image)
            runs.extend(self._followups.queue(uow, [image]))

        self._bytes.commit(write, stored, upload.stream)
        self._bytes.release(old_keys - image.blob_keys())
        self._followups.submit(runs)
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
        self._bytes.release(image.blob_keys())

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
        self._bytes.release({key for image in deleted for key in image.blob_keys()})
        return len(deleted)

    def open(self, image: Image, variant: ImageVariant) -> Content:
        key, mime = {
            ImageVariant.ORIGINAL: (image.original_key, image.format.mime),
            ImageVariant.DISPLAY: (image.display_key, image.display_mime),
            ImageVariant.THUMBNAIL: (image.thumbnail_key, image.thumbnail_mime),
        }[variant]
        size = self._blobs.size(key)  # first: a failure here leaves no stream open
        return Content(stream=self._blobs.open(key), mime=mime, size=size)

    def read_original(self, image: Image) -> bytes:
        with self._blobs.open(image.original_key) as stream:
            return stream.read()

    def close(self) -> None:
        self._bytes.close()

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

    def _room(
        self, uow: UnitOfWork, who: Principal, model_id: str, kind: ImageKind, *, lock: bool
    ) -> None:
        ensure_room(uow, who, model_id, kind, limit=self._limits.max_images_per_type, lock=lock)


def _matches(image: Image, model_id: str | None, kind: ImageKind | None) -> bool:
    return (model_id is None or image.model_id == model_id) and (kind is None or image.kind == kind)
