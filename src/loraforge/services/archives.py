"""Reading a training-set ZIP safely: images with optional same-stem ``.txt`` captions.

An archive is hostile until read. Everything that could make it a bomb or a trick is refused
from its central directory before one byte is inflated: too many entries, encryption, nested
archives, names that try to be paths (``..``, absolute, drive letters, backslashes, control
characters, the same name twice), an entry or a total declared beyond its cap, an entry that
claims to inflate more than ``max_ratio`` times its stored size. Then every entry is inflated into a
spooled temporary file, reading at most its declared size (zipfile stops there and checks the
CRC, so a lying header is a corrupt archive, not a bigger one). Only when all of it has been
read does anything reach the caller: a refused archive leaves nothing behind.

Names are never used as paths: they only pair an image with its caption and label the result.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, BinaryIO

from loraforge.domain.errors import BadRequest, PayloadTooLarge

CAPTION_SUFFIX = ".txt"
# Inflated / stored size an entry may have. Pictures are compressed already (JPEG, PNG and
# WebP shrink by a few percent at most in a ZIP; a flat, synthetic picture by ~10x); a ZIP bomb
# inflates by a thousand times and more.
MAX_RATIO = 100.0
MAX_CAPTION_BYTES = 16 * 1024  # a caption file larger than this is not a caption
# Entries larger than this go to a temporary file on disk: a thousand entries must not all be
# held in memory at once.
_SPOOL_BYTES = 64 * 1024
# What a truncated, corrupt or lying archive makes zipfile raise (a CRC or size mismatch is a
# BadZipFile; a broken deflate stream a zlib.error).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)
_ARCHIVE_SUFFIXES = frozenset(
    {".zip", ".7z", ".rar", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".lz", ".lzma", ".cab"}
)
_ARCHIVE_MAGIC = (
    b"PK\x03\x04",  # zip
    b"PK\x05\x06",  # empty zip
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"\x1f\x8b",  # gzip
    b"BZh",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",  # zstd
)
_SUPPORTED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Files operating systems leave in archives; they are neither images nor captions.
_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int  # files (directories not counted)
    max_entry_bytes: int  # any one entry, inflated (an image: as large as one upload may be)
    max_total_bytes: int  # all entries, inflated
    max_ratio: float  # inflated / stored, for any entry larger than ``ratio_floor``
    ratio_floor: int = 64 * 1024  # small files (captions) compress well and harmlessly


@dataclass
class ArchiveImage:
    """One image entry, read and CRC-checked; ``data`` is open until the archive is closed."""

    name: str
    data: IO[bytes]
    size: int
    caption: str | None  # from ``<stem>.txt`` beside it; None when there is none
    caption_name: str | None


@dataclass(frozen=True)
class ArchiveSkip:
    """An entry that is not an image to ingest, and why."""

    name: str
    code: str
    message: str


@dataclass
class ArchiveContents:
    images: list[ArchiveImage]
    skipped: list[ArchiveSkip]


@contextmanager
def read_archive(source: BinaryIO, limits: ArchiveLimits) -> Iterator[ArchiveContents]:
    """Check and inflate the ZIP in ``source``; images in name order. Raises ``BadRequest``
    (code ``archive_*``) or ``PayloadTooLarge`` for an archive refused as a whole."""
    try:
        archive = zipfile.ZipFile(source)
    except _READ_ERRORS as exc:
        raise _corrupt("The body is not a readable ZIP archive.") from exc
    with archive, ExitStack() as temporaries:
        files = _checked_entries(archive, limits)
        captions = {_stem(i.filename): i for i in files if _is_caption(i.filename)}
        images: list[ArchiveImage] = []
        skipped: list[ArchiveSkip] = []
        paired: set[str] = set()
        for info in sorted(files, key=lambda i: i.filename):
            if _is_caption(info.filename):
                continue
            if _is_junk(info.filename):
                skipped.append(ArchiveSkip(info.filename, "not_an_image", _JUNK_MESSAGE))
                continue
            data = temporaries.enter_context(_inflate(archive, info))
            caption_info = captions.get(_stem(info.filename))
            caption = _caption(archive, caption_info) if caption_info else None
            if caption_info is not None:
                paired.add(caption_info.filename)
            images.append(
                ArchiveImage(
                    info.filename,
                    data,
                    info.file_size,
                    caption,
                    caption_info.filename if caption_info else None,
                )
            )
        skipped += [
            ArchiveSkip(name, "orphan_caption", "No image has this caption file's name.")
            for name in sorted({i.filename for i in captions.values()} - paired)
        ]
        yield ArchiveContents(images, skipped)


_JUNK_MESSAGE = "A file the operating system left in the archive, not an image."


def _checked_entries(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    """The file entries, every directory-level refusal applied."""
    files = [i for i in archive.infolist() if not i.is_dir()]
    if len(files) > limits.max_entries:
        raise BadRequest(
            f"The archive has {len(files)} files; at most {limits.max_entries} are accepted.",
            code="archive_too_many_entries",
        )
    seen: set[str] = set()
    for info in files:
        _check_name(info.filename, seen)
        _check_entry(info, limits)
    total = sum(info.file_size for info in files)
    if total > limits.max_total_bytes:
        raise PayloadTooLarge(
            f"The archive inflates to {total} bytes; at most {limits.max_total_bytes} are "
            "accepted.",
            code="archive_too_large",
        )
    return files


def _check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    """What its central-directory record says about one entry: how it is stored, what it
    is called, how large it would be."""
    if info.flag_bits & 0x1:
        raise BadRequest(
            f"{info.filename!r} is encrypted; archives must not be.", code="archive_encrypted"
        )
    if info.compress_type not in _SUPPORTED_METHODS:
        raise BadRequest(
            f"{info.filename!r} uses a compression method other than stored or deflated.",
            code="archive_unsupported",
        )
    if PurePosixPath(info.filename).suffix.lower() in _ARCHIVE_SUFFIXES:
        raise _nested(info.filename)
    stored = max(1, info.compress_size)
    if info.file_size > limits.ratio_floor and info.file_size / stored > limits.max_ratio:
        raise BadRequest(
            f"{info.filename!r} would inflate {info.file_size / stored:.0f} times its "
            f"size; at most {limits.max_ratio:.0f} is accepted (a ZIP bomb?).",
            code="archive_bomb",
        )
    if info.file_size > limits.max_entry_bytes:
        raise PayloadTooLarge(
            f"{info.filename!r} inflates to {info.file_size} bytes; an entry holds at most "
            f"{limits.max_entry_bytes}.",
            code="archive_entry_too_large",
        )


def _check_name(name: str, seen: set[str]) -> None:
    parts = name.split("/")
    unsafe = (
        name.startswith("/")
        or "\\" in name
        or _DRIVE.match(name) is not None
        or _CONTROL.search(name) is not None
        or ".." in parts
    )
    if unsafe:
        raise BadRequest(
            f"The archive entry name {name!r} tries to be a path outside the archive.",
            code="archive_unsafe_name",
        )
    if name in seen:
        raise BadRequest(f"The archive holds {name!r} twice.", code="archive_unsafe_name")
    seen.add(name)


@contextmanager
def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[IO[bytes]]:
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (closed below)
    try:
        try:
            with archive.open(info) as entry:
                head = entry.read(8)
                if head.startswith(_ARCHIVE_MAGIC):
                    raise _nested(info.filename)
                spool.write(head)
                while chunk := entry.read(1024 * 1024):
                    spool.write(chunk)
        except _READ_ERRORS as exc:
            raise _corrupt(f"{info.filename!r} is corrupt or the archive is truncated.") from exc
        spool.seek(0)
        yield spool
    finally:
        spool.close()


def _caption(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    if info.file_size > MAX_CAPTION_BYTES:
        raise BadRequest(
            f"{info.filename!r} is {info.file_size} bytes; a caption file holds at most "
            f"{MAX_CAPTION_BYTES}.",
            code="archive_caption_too_large",
        )
    try:
        raw = archive.read(info)
    except _READ_ERRORS as exc:
        raise _corrupt(f"{info.filename!r} is corrupt or the archive is truncated.") from exc
    try:
        return raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"{info.filename!r} is not UTF-8 text.", code="archive_caption_not_text"
        ) from exc


def _stem(name: str) -> str:
    """``folder/a.jpg`` and ``folder/a.txt`` share ``folder/a``."""
    return str(PurePosixPath(name).with_suffix(""))


def _is_caption(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() == CAPTION_SUFFIX


def _is_junk(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        path.parts[0] == "__MACOSX"
        or path.name.startswith("._")
        or path.name.lower() in _JUNK_NAMES
    )


def _nested(name: str) -> BadRequest:
    return BadRequest(
        f"{name!r} is an archive itself; nested archives are not accepted.", code="archive_nested"
    )


def _corrupt(message: str) -> BadRequest:
    return BadRequest(message, code="archive_corrupt")
