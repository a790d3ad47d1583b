"""S3-compatible content-addressed blob store: ``<prefix><sha256>`` objects in one bucket.

Works with AWS S3 and with stores that speak its API (MinIO, Ceph RGW, Cloudflare R2…), so API
servers and workers on several machines share the same bytes. Credentials come from the standard
AWS chain (environment, shared config files, instance or pod roles), never from settings.

Every botocore/boto3 failure is translated here into the domain's ``NotFound``,
``InsufficientStorage`` or ``Unavailable``: services never see an infrastructure exception.
"""

from __future__ import annotations

import errno
import hashlib
import io
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, BinaryIO

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from loraforge.domain.entities import StoredBlob
from loraforge.domain.errors import InsufficientStorage, NotFound, Unavailable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from types_boto3_s3 import S3Client

CHUNK = 1024 * 1024
# Uploads at least this big go up in parts of this size (in parallel, and a failed part is
# retried alone); smaller ones are one PUT.
PART = 8 * CHUNK
UPLOAD_THREADS = 4
_HEX = frozenset("0123456789abcdef")
# Codes for "no such object" (HEAD answers have no body, so only the status is known there).
_ABSENT = frozenset({"NoSuchKey", "404", "NotFound"})
# MinIO and Ceph say so when a disk or the bucket's quota is full.
_FULL = frozenset({"XMinioStorageFull", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded"})
_DOWN = "The blob store is not available."


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int = 3,
        timeout_s: float = 30.0,
    ) -> None:
        self.bucket = bucket
        # "team-a" and "team-a/" name the same folder-like prefix.
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # The API streams downloads on many threads at once; botocore's default pool of 10
            # would open and drop extra connections under load.
            max_pool_connections=32,
            # botocore >= 1.36 adds CRC trailers to every upload by default, which several
            # S3-compatible stores reject; checksums only where the API requires them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # A session of our own: boto3's default session is not thread-safe, clients are.
        session = boto3.session.Session()
        self._client: S3Client = session.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        self._transfer = TransferConfig(
            multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=UPLOAD_THREADS
        )
        # s3transfer copies each part of a file object into memory to send parts in parallel,
        # up to 10 of them by default: bound it to the parts in flight (4 x 8 MiB per upload).
        self._transfer.max_in_memory_upload_chunks = UPLOAD_THREADS

    def _name(self, key: str) -> str:
        if not _is_key(key):
            raise NotFound("No such blob.")
        return self.prefix + key

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_file(io.BytesIO(data))

    def put_file(self, source: BinaryIO) -> StoredBlob:
        # The key is the hash, known only after the last byte: spool while hashing (small blobs
        # stay in memory, big ones go to an anonymous temp file that a crash cannot leave
        # behind), then upload from the spool. A big upload is never in memory as a whole: only
        # the parts in flight are (see ``max_in_memory_upload_chunks``).
        with tempfile.SpooledTemporaryFile(max_size=CHUNK) as spool:
            digest, size = _copy_hashing(source, spool)
            name = self._name(digest)
            with _translated_errors():
                if self._refresh(name):
                    return StoredBlob(key=digest, size=size, created=False)
                spool.seek(0)
                # One PUT below PART; a multipart upload above, which S3 completes atomically:
                # readers never see a partial object.
                self._client.upload_fileobj(
                    spool,
                    self.bucket,
                    name,
                    ExtraArgs={"ContentType": "application/octet-stream"},
                    Config=self._transfer,
                )
        return StoredBlob(key=digest, size=size, created=True)

    def _refresh(self, name: str) -> bool:
        """Renew an existing object's last-modified time; False when there is none.

        Identical bytes are stored once, but the sweep must not remove them while a new row
        that references them is being committed: like the local store's ``utime``, the new
        time puts the blob back inside the sweep's grace period. An in-place copy is the S3
        way to do it (server-side, no bytes travel), and it answers ``NoSuchKey`` when absent.
        """
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=name,
                CopySource={"Bucket": self.bucket, "Key": name},
                MetadataDirective="REPLACE",
                ContentType="application/octet-stream",
            )
        except ClientError as exc:
            if _code(exc) in _ABSENT:
                return False
            raise
        return True

    def open(self, key: str) -> BinaryIO:
        name = self._name(key)
        with _translated_errors():
            body = self._client.get_object(Bucket=self.bucket, Key=name)["Body"]
        return io.BufferedReader(_ObjectReader(body), buffer_size=CHUNK)

    def size(self, key: str) -> int:
        name = self._name(key)
        with _translated_errors():
            return self._client.head_object(Bucket=self.bucket, Key=name)["ContentLength"]

    def delete(self, key: str) -> None:
        name = self._name(key)
        with _translated_errors():
            # S3 answers 204 for an absent key too: deleting twice is harmless.
            self._client.delete_object(Bucket=self.bucket, Key=name)

    def iter_keys(self, *, older_than: datetime) -> Iterator[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            # The delimiter keeps the listing to the prefix's own objects: blobs are never
            # nested, so the health probes under ``tmp/`` and foreign folders are skipped.
            Bucket=self.bucket,
            Prefix=self.prefix,
            Delimiter="/",
        )
        with _translated_errors():
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    if _is_key(key) and item["LastModified"] < older_than:
                        yield key

    def check(self) -> None:
        # A name of its own per probe: checks from several machines never read each other's.
        name = f"{self.prefix}tmp/check-{uuid.uuid4().hex}"
        try:
            with _translated_errors():
                self._client.put_object(Bucket=self.bucket, Key=name, Body=b"ok")
                body = self._client.get_object(Bucket=self.bucket, Key=name)["Body"]
                with body:
                    data = body.read()
                self._client.delete_object(Bucket=self.bucket, Key=name)
        except (NotFound, InsufficientStorage) as exc:
            raise Unavailable(_DOWN) from exc
        if data != b"ok":
            raise Unavailable(_DOWN)

    def remove_stale_temp_files(self, *, older_than: datetime) -> int:
        """Abort multipart uploads of blobs that a crash left unfinished; returns how many.

        Their parts are invisible to readers but stored (and billed) until aborted.
        """
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        removed = 0
        with _translated_errors():
            for page in pages:
                for upload in page.get("Uploads", []):
                    name, upload_id = upload["Key"], upload["UploadId"]
                    if not _is_key(name[len(self.prefix) :]) or upload["Initiated"] >= older_than:
                        continue
                    if self._abort(name, upload_id):
                        removed += 1
        return removed

    def _abort(self, name: str, upload_id: str) -> bool:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":  # finished or aborted since the listing
                return False
            raise
        return True


class _ObjectReader(io.RawIOBase):
    """An object's body as a file; a network failure mid-read surfaces as ``Unavailable``."""

    def __init__(self, body: StreamingBody) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with _translated_errors():
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


@contextmanager
def _translated_errors() -> Iterator[None]:
    """The adapter's boundary: botocore and boto3 errors become domain errors."""
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        if code in _ABSENT:
            raise NotFound("No such blob.") from exc
        if code in _FULL:
            raise InsufficientStorage("No space left to store the image.") from exc
        raise Unavailable(_DOWN) from exc
    except (BotoCoreError, Boto3Error) as exc:  # unreachable endpoint, no credentials, timeouts
        raise Unavailable(_DOWN) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_key(key: str) -> bool:
    return len(key) == 64 and _HEX.issuperset(key)


def _copy_hashing(source: BinaryIO, spool: IO[bytes]) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    try:
        while chunk := source.read(CHUNK):
            hasher.update(chunk)
            spool.write(chunk)
            size += len(chunk)
    except OSError as exc:  # the spool's disk (the temp dir): as the local store reports its own
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage("No space left to store the image.") from exc
        raise Unavailable(_DOWN) from exc
    return hasher.hexdigest(), size
