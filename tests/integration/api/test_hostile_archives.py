"""Hostile archives through the HTTP API: each gets a clear 4xx with its code and leaves
nothing behind (no training data, no new blob, no temporary file), on SQLite and PostgreSQL.

Every hostile archive also carries ordinary pictures, so that "nothing behind" means something:
they would have been stored, had the archive been accepted.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator

import pytest

from loraforge.settings import Settings
from tests import imagefactory
from tests.blob_checks import stored_keys
from tests.conftest import Api
from tests.integration.api.test_model_data import assert_error, create_model
from tests.integration.api.test_model_data_archive import api_with, jpeg, listed, post_archive
from tests.integration.test_concurrency import temp_files
from tests.zips import encrypted, make_zip

KiB = 1024
MAX_ENTRY = 256 * KiB  # LORAFORGE_MAX_DATA_BYTES: an entry may be as large as one upload
MAX_INFLATED = 1024 * KiB
MAX_ENTRIES = 8
MAX_ARCHIVE = 2048 * KiB


@pytest.fixture
def tight(settings: Settings) -> Iterator[Api]:
    with api_with(
        settings,
        max_data_bytes=MAX_ENTRY,
        max_archive_inflated_bytes=MAX_INFLATED,
        max_archive_entries=MAX_ENTRIES,
        max_archive_bytes=MAX_ARCHIVE,
    ) as api:
        yield api


def good() -> list[tuple[str, bytes]]:
    return [("good1.jpg", jpeg(1)), ("good1.txt", b"a caption"), ("good2.jpg", jpeg(2))]


def truncated() -> bytes:
    whole = make_zip(good(), method=zipfile.ZIP_STORED)
    return whole[: len(whole) // 2]


def damaged() -> bytes:
    body = bytearray(make_zip(good(), method=zipfile.ZIP_STORED))
    body[200] ^= 0xFF  # inside good1.jpg's stored bytes: its CRC no longer matches
    return bytes(body)


HOSTILE: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "not a zip": (lambda: b"these bytes are no archive at all", 400, "archive_corrupt"),
    "a picture, not a zip": (lambda: jpeg(1), 400, "archive_corrupt"),
    "truncated": (truncated, 400, "archive_corrupt"),
    "an entry fails its CRC": (damaged, 400, "archive_corrupt"),
    "zip bomb (compression ratio)": (
        lambda: make_zip([*good(), ("zeros.jpg", bytes(200 * KiB))]),
        400,
        "archive_bomb",
    ),
    "zip bomb (one entry over the upload limit)": (
        lambda: make_zip([*good(), ("huge.jpg", os.urandom(MAX_ENTRY + 1))], zipfile.ZIP_STORED),
        413,
        "archive_entry_too_large",
    ),
    "zip bomb (all entries over the total)": (
        lambda: make_zip(
            [*good(), *((f"big{n}.jpg", os.urandom(MAX_ENTRY - KiB)) for n in range(5))],
            zipfile.ZIP_STORED,
        ),
        413,
        "archive_too_large",
    ),
    "too many entries": (
        lambda: make_zip([*good(), *((f"{n}.jpg", jpeg(n)) for n in range(MAX_ENTRIES))]),
        400,
        "archive_too_many_entries",
    ),
    "nested archive (by name)": (
        lambda: make_zip([*good(), ("more.zip", b"whatever")]),
        400,
        "archive_nested",
    ),
    "nested archive (by content)": (
        lambda: make_zip([*good(), ("innocent.jpg", make_zip(good()))]),
        400,
        "archive_nested",
    ),
    "path escaping upwards": (
        lambda: make_zip([*good(), ("../../etc/cron.d/x.jpg", jpeg(3))]),
        400,
        "archive_unsafe_name",
    ),
    "absolute path": (
        lambda: make_zip([*good(), ("/etc/passwd.jpg", jpeg(3))]),
        400,
        "archive_unsafe_name",
    ),
    "drive letter": (
        lambda: make_zip([*good(), ("C:/Windows/x.jpg", jpeg(3))]),
        400,
        "archive_unsafe_name",
    ),
    "backslashes": (
        lambda: make_zip([*good(), ("..\\..\\x.jpg", jpeg(3))]),
        400,
        "archive_unsafe_name",
    ),
    "the same name twice": (
        lambda: make_zip([*good(), ("good2.jpg", jpeg(3))]),
        400,
        "archive_unsafe_name",
    ),
    "encrypted entry": (lambda: encrypted(make_zip(good())), 400, "archive_encrypted"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_archive_is_refused_and_leaves_nothing_behind(tight: Api, case: str) -> None:
    make, status, code = HOSTILE[case]
    model_id = create_model(tight)
    before = stored_keys(tight.container)

    response = post_archive(tight, model_id, make())

    assert_error(response, status, code)
    assert listed(tight, model_id) == []
    assert stored_keys(tight.container) == before
    assert temp_files(tight.container.settings) == []


def test_a_body_over_the_archive_limit_is_413_and_leaves_nothing_behind(tight: Api) -> None:
    model_id = create_model(tight)
    before = stored_keys(tight.container)
    padding = [(f"pad{n}.jpg", os.urandom(MAX_ENTRY - KiB)) for n in range(9)]
    body = make_zip([*good(), *padding], zipfile.ZIP_STORED)
    assert len(body) > MAX_ARCHIVE

    response = post_archive(tight, model_id, body)

    assert_error(response, 413, "payload_too_large")
    assert listed(tight, model_id) == []
    assert stored_keys(tight.container) == before


def test_an_empty_body_is_a_400(api: Api) -> None:
    model_id = create_model(api)
    assert_error(post_archive(api, model_id, b""), 400, "bad_request")


def test_the_archive_limit_is_its_own_not_the_single_upload_s(tight: Api) -> None:
    # An archive larger than one upload may be (LORAFORGE_MAX_DATA_BYTES) is fine.
    model_id = create_model(tight)
    pictures = [(f"{n}.png", imagefactory.png(300 + n, 300)) for n in range(3)]
    noise = [(f"noise{n}.jpg", os.urandom(MAX_ENTRY // 2)) for n in range(3)]
    body = make_zip([*pictures, *noise], zipfile.ZIP_STORED)
    assert MAX_ENTRY < len(body) < MAX_ARCHIVE

    response = post_archive(tight, model_id, body)

    assert response.status_code == 201, response.text
    assert response.json()["totals"] == {"created": 3, "rejected": 3, "skipped": 0}
