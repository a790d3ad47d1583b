"""Reading training-set ZIPs: images paired with captions, hostile archives refused whole."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest

from loraforge.domain.errors import BadRequest, DomainError, PayloadTooLarge
from loraforge.services.archives import ArchiveLimits, read_archive
from tests.imagefactory import quadrants
from tests.zips import encrypted, make_zip

LIMITS = ArchiveLimits(
    max_entries=20, max_entry_bytes=1024 * 1024, max_total_bytes=5 * 1024 * 1024, max_ratio=20.0
)


def jpeg() -> bytes:
    buffer = io.BytesIO()
    quadrants(64, 48).save(buffer, format="JPEG")
    return buffer.getvalue()


def refused(body: bytes, limits: ArchiveLimits = LIMITS) -> DomainError:
    with pytest.raises(DomainError) as caught, read_archive(io.BytesIO(body), limits):
        pass
    return caught.value


def test_images_come_in_name_order_with_their_same_stem_captions() -> None:
    body = make_zip(
        [
            ("b.png", jpeg()),
            ("a.jpg", jpeg()),
            ("a.txt", "\ufeffa red square, studio light\n".encode()),
            ("set/c.webp", jpeg()),
            ("set/c.TXT", b"third"),
            ("orphan.txt", b"no image"),
            ("__MACOSX/._a.jpg", b"\x00\x05\x16\x07"),
            ("set/.DS_Store", b"\x00\x00\x00\x01Bud1"),
            ("empty/", b""),
        ]
    )
    with read_archive(io.BytesIO(body), LIMITS) as contents:
        assert [(i.name, i.caption, i.caption_name) for i in contents.images] == [
            ("a.jpg", "a red square, studio light", "a.txt"),
            ("b.png", None, None),
            ("set/c.webp", "third", "set/c.TXT"),
        ]
        assert all(i.data.read() == jpeg() for i in contents.images)
        assert [(s.name, s.code) for s in contents.skipped] == [
            ("__MACOSX/._a.jpg", "not_an_image"),
            ("set/.DS_Store", "not_an_image"),
            ("orphan.txt", "orphan_caption"),
        ]
        opened = [i.data for i in contents.images]
    assert all(f.closed for f in opened)  # the temporary files go with the archive


def test_not_a_zip_and_a_truncated_zip_are_corrupt() -> None:
    assert refused(b"just some bytes").code == "archive_corrupt"
    whole = make_zip([("a.jpg", jpeg()), ("b.jpg", jpeg())], method=zipfile.ZIP_STORED)
    assert refused(whole[: len(whole) // 2]).code == "archive_corrupt"


def test_a_damaged_entry_fails_its_crc_and_the_archive_is_refused() -> None:
    body = bytearray(make_zip([("a.jpg", jpeg())], method=zipfile.ZIP_STORED))
    body[200] ^= 0xFF  # inside a.jpg's stored bytes
    assert refused(bytes(body)).code == "archive_corrupt"


def test_too_many_files_are_refused() -> None:
    body = make_zip([(f"{n}.jpg", b"x") for n in range(LIMITS.max_entries + 1)])
    error = refused(body)
    assert error.code == "archive_too_many_entries"
    assert str(LIMITS.max_entries) in str(error)


def test_encrypted_entries_are_refused() -> None:
    assert refused(encrypted(make_zip([("a.jpg", jpeg())]))).code == "archive_encrypted"


@pytest.mark.parametrize("name", ["inner.zip", "photos.tar.gz", "x.7z"])
def test_nested_archives_are_refused_by_name(name: str) -> None:
    assert refused(make_zip([(name, b"whatever")])).code == "archive_nested"


def test_nested_archives_are_refused_by_content_whatever_their_name() -> None:
    inner = make_zip([("a.jpg", jpeg())])
    assert refused(make_zip([("photo.jpg", inner)])).code == "archive_nested"


@pytest.mark.parametrize(
    "names",
    [
        ["../escape.jpg"],
        ["/etc/passwd.jpg"],
        ["C:/windows.jpg"],
        ["dir\\back.jpg"],
        ["line\nbreak.jpg"],
        ["same.jpg", "same.jpg"],
    ],
)
def test_names_that_try_to_be_paths_are_refused(names: list[str]) -> None:
    assert refused(make_zip([(n, jpeg()) for n in names])).code == "archive_unsafe_name"


def test_a_zip_bomb_is_refused_before_inflating() -> None:
    bomb = make_zip([("zeros.jpg", bytes(4 * 1024 * 1024))])
    assert len(bomb) < 10 * 1024
    error = refused(bomb)
    assert error.code == "archive_bomb"
    assert isinstance(error, BadRequest)


def test_a_declared_total_beyond_the_cap_is_refused() -> None:
    small = dataclasses.replace(LIMITS, max_total_bytes=2 * len(jpeg()))
    error = refused(make_zip([(f"{n}.jpg", jpeg()) for n in range(3)]), small)
    assert error.code == "archive_too_large"
    assert isinstance(error, PayloadTooLarge)


def test_an_entry_declared_larger_than_one_upload_is_refused_before_inflating() -> None:
    one = dataclasses.replace(LIMITS, max_entry_bytes=len(jpeg()) - 1)
    error = refused(make_zip([("a.jpg", jpeg())], method=zipfile.ZIP_STORED), one)
    assert error.code == "archive_entry_too_large"
    assert isinstance(error, PayloadTooLarge)
    assert "a.jpg" in str(error)


def test_unsupported_compression_and_bad_captions_are_refused() -> None:
    bzip = make_zip([("a.jpg", jpeg())], method=zipfile.ZIP_BZIP2)
    assert refused(bzip).code == "archive_unsupported"
    latin = make_zip([("a.jpg", jpeg()), ("a.txt", "caf\xe9".encode("latin-1"))])
    assert refused(latin).code == "archive_caption_not_text"
    huge = make_zip([("a.jpg", jpeg()), ("a.txt", b"word " * 5000)])
    assert refused(huge).code == "archive_caption_too_large"
