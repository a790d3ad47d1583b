"""The BlobStore contract, run against every implementation: local files and S3 (moto's server).

Then what only the S3 store has: a key prefix in a shared bucket, multipart uploads and their
clean-up, and a store that is down or misconfigured answering with domain errors only.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import time
from datetime import UTC, datetime, timedelta
from io import FileIO
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from loraforge.adapters.storage import local
from loraforge.adapters.storage.local import LocalBlobStore
from loraforge.adapters.storage.s3 import S3BlobStore
from loraforge.domain.errors import NotFound, Unavailable
from loraforge.ports import BlobStore
from tests import s3_server
from tests.blob_faults import MODES, READABLE, unusable

MiB = 1024 * 1024
ABSENT = hashlib.sha256(b"never stored").hexdigest()


def use_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def s3_store(
    monkeypatch: pytest.MonkeyPatch,
    *,
    bucket: str | None = None,
    prefix: str = "blobs",
    endpoint_url: str | None = None,
    max_attempts: int = 3,
) -> S3BlobStore:
    """A store on a fresh bucket of the test server, unless told otherwise."""
    use_test_credentials(monkeypatch)
    return S3BlobStore(
        bucket or s3_server.new_bucket(),
        prefix=prefix,
        endpoint_url=endpoint_url or s3_server.endpoint_url(),
        region=s3_server.REGION,
        max_attempts=max_attempts,
        timeout_s=5.0,
    )


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return s3_store(monkeypatch)


def now() -> datetime:
    return datetime.now(UTC)


def keys_before(store: BlobStore, cutoff: datetime) -> list[str]:
    return list(store.iter_keys(older_than=cutoff))


def sha256_of(stream: BinaryIO) -> str:
    hasher = hashlib.sha256()
    while chunk := stream.read(MiB):
        hasher.update(chunk)
    return hasher.hexdigest()


# --- the contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"some image bytes", b"", bytes(range(256)) * 5000])
def test_put_bytes_round_trip(store: BlobStore, data: bytes) -> None:
    stored = store.put_bytes(data)

    assert stored.key == hashlib.sha256(data).hexdigest()
    assert (stored.size, stored.created) == (len(data), True)
    assert store.size(stored.key) == len(data)
    with store.open(stored.key) as stream:
        assert stream.read() == data


def test_put_file_stores_from_the_current_position(store: BlobStore) -> None:
    source = io.BytesIO(b"HEADER" + b"the payload")
    source.seek(len(b"HEADER"))

    stored = store.put_file(source)

    assert stored.key == hashlib.sha256(b"the payload").hexdigest()
    with store.open(stored.key) as stream:
        assert stream.read() == b"the payload"


def test_identical_bytes_are_stored_once(store: BlobStore) -> None:
    first = store.put_bytes(b"same bytes")
    second = store.put_file(io.BytesIO(b"same bytes"))

    assert second.key == first.key
    assert (first.created, second.created) == (True, False)
    assert keys_before(store, now() + timedelta(minutes=1)) == [first.key]


def test_storing_identical_bytes_again_renews_the_blob_for_the_sweep(store: BlobStore) -> None:
    stored = store.put_bytes(b"shared by an old and a new image")
    # Stores keep times to the second (S3's LastModified): move to the next whole second.
    time.sleep(1.05 - now().microsecond / 1_000_000)
    cutoff = now().replace(microsecond=0)
    assert keys_before(store, cutoff) == [stored.key]

    store.put_bytes(b"shared by an old and a new image")

    assert keys_before(store, cutoff) == []  # back inside the sweep's grace period


@pytest.mark.parametrize("key", [ABSENT, "../../etc/passwd", "ABC", ""])
def test_absent_or_malformed_keys_are_not_found(store: BlobStore, key: str) -> None:
    with pytest.raises(NotFound):
        store.open(key)
    with pytest.raises(NotFound):
        store.size(key)


def test_delete_removes_and_ignores_absent_keys(store: BlobStore) -> None:
    kept = store.put_bytes(b"kept")
    gone = store.put_bytes(b"gone")

    store.delete(gone.key)
    store.delete(gone.key)
    store.delete(ABSENT)

    with pytest.raises(NotFound):
        store.open(gone.key)
    assert store.size(kept.key) == len(b"kept")
    assert store.put_bytes(b"gone").created  # stored anew after the delete


def test_iter_keys_lists_only_blobs_written_before_the_cutoff(store: BlobStore) -> None:
    keys = {store.put_bytes(f"blob {i}".encode()).key for i in range(3)}

    assert keys_before(store, now() - timedelta(minutes=1)) == []
    assert set(keys_before(store, now() + timedelta(minutes=1))) == keys


def test_check_passes_and_leaves_no_blob_behind(store: BlobStore) -> None:
    store.check()
    store.check()

    assert keys_before(store, now() + timedelta(minutes=1)) == []


def test_nothing_to_clean_up_in_a_store_without_partial_writes(store: BlobStore) -> None:
    store.put_bytes(b"complete")

    assert store.remove_stale_temp_files(older_than=now() + timedelta(minutes=1)) == 0


def test_a_large_file_round_trips(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(20 * MiB + 123))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()

    with source.open("rb") as stream:
        stored = store.put_file(stream)

    assert (stored.key, stored.size) == (expected, 20 * MiB + 123)
    with store.open(stored.key) as stream:
        assert sha256_of(stream) == expected


# --- S3 only ----------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    return s3_store(monkeypatch, prefix="team-a/")


def object_names(store: S3BlobStore) -> set[str]:
    listing = s3_server.client().list_objects_v2(Bucket=store.bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_s3_objects_live_under_the_prefix_and_foreign_objects_are_ignored(
    s3: S3BlobStore,
) -> None:
    client = s3_server.client()
    foreign = hashlib.sha256(b"another application's object").hexdigest()
    for name in (foreign, f"team-b/{foreign}", "team-a/notes.txt", f"team-a/old/{foreign}"):
        client.put_object(Bucket=s3.bucket, Key=name, Body=b"not ours")

    stored = s3.put_bytes(b"ours")

    assert f"team-a/{stored.key}" in object_names(s3)
    assert keys_before(s3, now() + timedelta(minutes=1)) == [stored.key]
    with pytest.raises(NotFound):
        s3.open(foreign)


def test_s3_large_files_go_up_in_parts(s3: S3BlobStore) -> None:
    stored = s3.put_file(io.BytesIO(os.urandom(20 * MiB)))

    head = s3_server.client().head_object(Bucket=s3.bucket, Key=f"team-a/{stored.key}")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three 8 MiB parts


def test_s3_aborts_uploads_left_unfinished_and_only_those_of_blobs(s3: S3BlobStore) -> None:
    client = s3_server.client()
    blob_name = f"team-a/{ABSENT}"
    client.create_multipart_upload(Bucket=s3.bucket, Key=blob_name)
    client.create_multipart_upload(Bucket=s3.bucket, Key="team-a/someone-elses-upload")

    removed = s3.remove_stale_temp_files(older_than=now() + timedelta(minutes=1))

    assert removed == 1
    left = client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
    assert [upload["Key"] for upload in left] == ["team-a/someone-elses-upload"]
    assert s3.remove_stale_temp_files(older_than=now() + timedelta(minutes=1)) == 0


def test_s3_a_missing_bucket_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    store = s3_store(monkeypatch, bucket="no-such-bucket-for-loraforge")

    with pytest.raises(Unavailable):
        store.check()
    with pytest.raises(Unavailable):
        store.put_bytes(b"bytes")
    with pytest.raises(Unavailable):
        list(store.iter_keys(older_than=now()))
    with pytest.raises(Unavailable):
        store.delete(ABSENT)


def test_s3_an_endpoint_that_is_down_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    store = s3_store(
        monkeypatch, bucket="any-bucket", endpoint_url=s3_server.closed_port_url(), max_attempts=1
    )

    for call in (
        store.check,
        lambda: store.open(ABSENT),
        lambda: store.size(ABSENT),
        lambda: store.put_bytes(b"bytes"),
        lambda: store.delete(ABSENT),
        lambda: keys_before(store, now()),
        lambda: store.remove_stale_temp_files(older_than=now()),
    ):
        with pytest.raises(Unavailable):
            call()


def test_s3_without_credentials_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    store = s3_store(monkeypatch)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup either
    # Credentials are looked up when the client is made: a store made now has none.
    unconfigured = S3BlobStore(store.bucket, endpoint_url=s3_server.endpoint_url())

    with pytest.raises(Unavailable):
        unconfigured.check()


# --- local only: an unusable folder ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_local_an_unusable_folder_is_unavailable_never_an_os_error(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call answers ``Unavailable`` (what it can still read, it reads: a read-only
    folder serves its blobs), never an ``OSError``, and the store works again afterwards."""
    store = LocalBlobStore(tmp_path / "blobs")
    kept = store.put_bytes(b"stored before")
    cutoff = now() + timedelta(minutes=1)

    with unusable(store.root, mode, monkeypatch):
        for write in (
            store.check,
            lambda: store.put_bytes(b"new bytes"),
            lambda: store.put_bytes(b"stored before"),  # identical bytes: only a time refresh
            lambda: store.delete(kept.key),
        ):
            with pytest.raises(Unavailable):
                write()
        if mode in READABLE:
            with store.open(kept.key) as stream:
                assert stream.read() == b"stored before"
            assert store.size(kept.key) == len(b"stored before")
            assert keys_before(store, cutoff) == [kept.key]
            assert store.remove_stale_temp_files(older_than=cutoff) == 0
            for call in (lambda: store.open(ABSENT), lambda: store.size(ABSENT)):
                with pytest.raises(NotFound):
                    call()
        else:
            for read in (
                lambda: store.open(kept.key),
                lambda: store.size(kept.key),
                lambda: store.open(ABSENT),  # not "no such blob": the whole store is missing
                lambda: store.size(ABSENT),
                lambda: store.delete(ABSENT),
                lambda: keys_before(store, cutoff),
                lambda: store.remove_stale_temp_files(older_than=cutoff),
            ):
                with pytest.raises(Unavailable):
                    read()

    store.check()
    with store.open(kept.key) as stream:
        assert stream.read() == b"stored before"
    assert store.put_bytes(b"new bytes").created


def test_local_an_io_error_while_reading_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fails mid-read: the caller gets ``Unavailable``, not an ``OSError``."""
    store = LocalBlobStore(tmp_path / "blobs")
    kept = store.put_bytes(b"on a failing disk")

    class FailingReads(FileIO):
        def readinto(self, buffer: Any) -> int:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local, "FileIO", FailingReads)
    with store.open(kept.key) as stream, pytest.raises(Unavailable):
        stream.read()
