"""A model's training set as one ZIP: images with same-stem ``.txt`` captions, in and out.

In (``add``): ``services.archives`` reads the archive and refuses a hostile one whole before
anything is stored. Its images go in as one batch (``ImageBatches``), each the way a single
upload goes, so each entry is answered as a single upload of its bytes would be: ``created``
with its image and the same warnings, or ``rejected`` with the same error (``limit_reached``
for the entries beyond the model's places). Files that are no images (a caption without its
image, what an operating system leaves behind) are ``skipped``.

Out (``download``): the same layout, so a training set round-trips: each image's original
bytes under a name made from its upload's name (unique, and safe to unpack anywhere) and, when
someone wrote it a caption (the client or the captioning model, an empty one on purpose too),
``<stem>.txt`` beside it. Written to a spooled temporary file, never held whole in memory.
"""

from __future__ import annotations

import enum
import itertools
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import BinaryIO, cast

from loraforge.domain.captions import CaptionSource
from loraforge.domain.dataset import Issue
from loraforge.domain.entities import Image, ImageFormat, ImageKind, Principal
from loraforge.domain.errors import BadRequest, DomainError, NotFound
from loraforge.ports import BlobStore
from loraforge.services.archives import CAPTION_SUFFIX, ArchiveContents, ArchiveLimits, read_archive
from loraforge.services.dataset_check import DatasetService
from loraforge.services.image_bytes import Upload
from loraforge.services.images import ImageService
from loraforge.services.paging import PageRequest

TRAINING = ImageKind.TRAINING
SPOOL_BYTES = 1024 * 1024  # a larger download goes to a temporary file
_PAGE = 500  # training images listed per query while a download is written
_UNSAFE = re.compile(r"[^\w\- ]+")  # what a name keeps: letters, digits, _ - and spaces
_MAX_STEM = 100
_EXTENSION = {ImageFormat.JPEG: "jpg"}  # else the format's own name
_ZIP_EPOCH = datetime(1980, 1, 1)  # ZIP dates start here


class EntryStatus(enum.StrEnum):
    CREATED = "created"
    REJECTED = "rejected"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ArchiveEntry:
    """What became of one file of an archive (a caption file goes with its image)."""

    name: str
    status: EntryStatus
    image: Image | None = None
    code: str | None = None  # why it was rejected or skipped
    message: str | None = None
    warnings: list[Issue] = field(default_factory=list)


@dataclass(frozen=True)
class ArchiveReport:
    entries: list[ArchiveEntry]  # in name order

    def count(self, status: EntryStatus) -> int:
        return sum(1 for e in self.entries if e.status is status)


@dataclass(frozen=True)
class ArchiveFile:
    """A written archive: ``stream`` from its start (the caller closes it), ``size`` bytes."""

    stream: BinaryIO
    size: int


class TrainingArchives:
    def __init__(
        self,
        *,
        images: ImageService,
        dataset: DatasetService,
        blobs: BlobStore,
        limits: ArchiveLimits,
    ) -> None:
        self._images = images
        self._dataset = dataset
        self._blobs = blobs
        self._limits = limits

    def add(
        self, who: Principal, model_id: str, source: BinaryIO, *, allowed: frozenset[ImageFormat]
    ) -> ArchiveReport:
        """The archive in ``source`` as training images of the model (``allowed`` formats).
        Raises ``BadRequest`` / ``PayloadTooLarge`` (``archive_*``) for an archive refused
        whole, ``NotFound`` without the model; either way nothing is stored."""
        with read_archive(source, self._limits) as contents:
            entries = self._ingest(who, model_id, contents, allowed)
        entries += [
            ArchiveEntry(s.name, EntryStatus.SKIPPED, code=s.code, message=s.message)
            for s in contents.skipped
        ]
        return ArchiveReport(sorted(entries, key=lambda e: e.name))

    def download(self, who: Principal, model_id: str) -> ArchiveFile:
        """The model's training images as a ZIP of ``add``'s layout, oldest first."""
        images = self._training_images(who, model_id)
        spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # noqa: SIM115
        try:
            with zipfile.ZipFile(spool, "w") as archive:
                for image, stem in zip(images, entry_stems(images), strict=True):
                    self._write(archive, image, stem)
            size = spool.tell()
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return ArchiveFile(spool, size)

    # --- helpers ------------------------------------------------------------------------

    def _ingest(
        self,
        who: Principal,
        model_id: str,
        contents: ArchiveContents,
        allowed: frozenset[ImageFormat],
    ) -> list[ArchiveEntry]:
        # An empty file is refused as an empty body is, without being decoded.
        sized = [i for i in contents.images if i.size > 0]
        outcomes = self._images.batches.ingest(
            who,
            [Upload(stream=cast(BinaryIO, i.data), name=i.name, caption=i.caption) for i in sized],
            kind=TRAINING,
            model_id=model_id,
            allowed=allowed,
            origin="native",
        )
        entries = [
            _rejected(i.name, BadRequest("The file is empty; an image has bytes."))
            for i in contents.images
            if i.size == 0
        ]
        for entry, outcome in zip(sized, outcomes, strict=True):
            if outcome.image is not None:
                warnings = self._dataset.warnings(who, outcome.image)
                entries.append(
                    ArchiveEntry(entry.name, EntryStatus.CREATED, outcome.image, warnings=warnings)
                )
            elif outcome.error is not None:
                entries.append(_rejected(entry.name, outcome.error))
        return entries

    def _training_images(self, who: Principal, model_id: str) -> list[Image]:
        """Every training image of the model, oldest first (``NotFound`` without it)."""
        newest_first: list[Image] = []
        number = 1
        while True:
            page = self._images.list_for_model(
                who, model_id, kinds=[TRAINING], page=PageRequest(number, _PAGE)
            )
            newest_first += page.items
            if len(page.items) < _PAGE:
                return newest_first[::-1]
            number += 1

    def _write(self, archive: zipfile.ZipFile, image: Image, stem: str) -> None:
        when = max(image.created_at.replace(tzinfo=None), _ZIP_EPOCH).timetuple()[:6]
        picture = zipfile.ZipInfo(f"{stem}.{_EXTENSION.get(image.format, image.format.value)}")
        picture.date_time = when
        picture.compress_type = zipfile.ZIP_STORED  # pictures are compressed already
        try:
            source = self._blobs.open(image.original_key)
        except NotFound:
            return  # deleted (with its bytes) since it was listed: no longer in the set
        with source, archive.open(picture, "w") as target:
            shutil.copyfileobj(source, target, SPOOL_BYTES)
        if image.caption_source is not CaptionSource.NONE:
            caption = zipfile.ZipInfo(f"{stem}{CAPTION_SUFFIX}", date_time=when)
            caption.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(caption, image.caption.encode())


def entry_stems(images: Sequence[Image]) -> list[str]:
    """A name without suffix for each image: its upload's name, kept to letters, digits,
    ``_ - `` and spaces (never a path, a drive or a dot), unique whatever the case; else its
    id."""
    taken: set[str] = set()
    stems: list[str] = []
    for image in images:
        base = _UNSAFE.sub("_", PurePosixPath(image.name or "").stem).strip("_ ")[:_MAX_STEM]
        stem = next(s for s in _candidates(base, image.id) if s.casefold() not in taken)
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def _candidates(base: str, image_id: str) -> Iterator[str]:
    if base:
        yield base
        yield f"{base}-{image_id[:8]}"
    yield image_id
    yield from (f"{image_id}-{n}" for n in itertools.count(1))


def _rejected(name: str, error: DomainError) -> ArchiveEntry:
    return ArchiveEntry(name, EntryStatus.REJECTED, code=error.code, message=error.message)
