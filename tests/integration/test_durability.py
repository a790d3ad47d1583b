"""Faults around the blob-then-row write: failed commits, crashes, outages, a full disk.

Each case must end with no 5xx but 503/507, nothing half-written (no row without its blobs, no
blob without its row once the sweep ran), and recovery without a restart.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from loraforge.adapters.db.tables import ImageRow
from loraforge.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.cli.main import app as cli
from loraforge.domain.entities import ImageVariant, StoredBlob
from loraforge.domain.errors import DomainError
from loraforge.ports import (
    AccountRepository,
    ApiKeyRepository,
    BlobLockRepository,
    CaptionRunRepository,
    ImageRepository,
    JobRepository,
    ModelRepository,
    PredictionRepository,
    SigningKeyRepository,
    TaskReceiptRepository,
    TrainingOutputRepository,
    TrainingPairRepository,
    TrainingReceiptRepository,
    TrainingRepository,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookRepository,
)
from loraforge.services.clock import new_id
from loraforge.services.images import ImageService
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api
from tests.databases import PostgresDatabases, SqliteDatabases
from tests.fakes import FakeFetcher

HOUR = 3600


def blob_files(settings: Settings) -> dict[str, Path]:
    return {p.name: p for p in (settings.data_dir / "blobs").glob("??/??/*") if p.is_file()}


def temp_files(settings: Settings) -> list[Path]:
    return list((settings.data_dir / "blobs" / "tmp").iterdir())


def row_count(container: Container) -> int:
    with Session(container.uow.engine) as session:
        return session.scalar(select(func.count()).select_from(ImageRow)) or 0


def referenced_keys(container: Container) -> set[str]:
    with Session(container.uow.engine) as session:
        rows = session.execute(
            select(ImageRow.original_key, ImageRow.display_key, ImageRow.thumbnail_key)
        )
        return {key for row in rows for key in row}


def create_model(client: TestClient, headers: dict[str, str]) -> str:
    created = client.post("/v1/models", json={"displayName": "Durable"}, headers=headers)
    assert created.status_code == 201, created.text
    model_id: str = created.json()["id"]
    return model_id


def make_old(path: Path, seconds: float = 2 * HOUR) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


# --- (a) the commit fails after the blobs were written ----------------------------------


class _CommitFails:
    """A unit of work that works normally but whose ``commit()`` fails like a lost database."""

    def __init__(self, inner: UnitOfWork) -> None:
        self._inner = inner

    @property
    def accounts(self) -> AccountRepository:
        return self._inner.accounts

    @property
    def api_keys(self) -> ApiKeyRepository:
        return self._inner.api_keys

    @property
    def models(self) -> ModelRepository:
        return self._inner.models

    @property
    def images(self) -> ImageRepository:
        return self._inner.images

    @property
    def trainings(self) -> TrainingRepository:
        return self._inner.trainings

    @property
    def predictions(self) -> PredictionRepository:
        return self._inner.predictions

    @property
    def jobs(self) -> JobRepository:
        return self._inner.jobs

    @property
    def webhooks(self) -> WebhookRepository:
        return self._inner.webhooks

    @property
    def receipts(self) -> TaskReceiptRepository:
        return self._inner.receipts

    @property
    def pairs(self) -> TrainingPairRepository:
        return self._inner.pairs

    @property
    def caption_runs(self) -> CaptionRunRepository:
        return self._inner.caption_runs

    @property
    def blob_locks(self) -> BlobLockRepository:
        return self._inner.blob_locks

    @property
    def signing_keys(self) -> SigningKeyRepository:
        return self._inner.signing_keys

    @property
    def training_receipts(self) -> TrainingReceiptRepository:
        return self._inner.training_receipts

    @property
    def training_outputs(self) -> TrainingOutputRepository:
        return self._inner.training_outputs

    def commit(self) -> None:
        raise OperationalError("COMMIT", None, OSError(errno.EIO, "disk I/O error"))

    def rollback(self) -> None:
        self._inner.rollback()


@dataclass
class FailingWrites:
    """Wraps the real SqlUnitOfWorkFactory: every write transaction's commit fails."""

    real: SqlUnitOfWorkFactory
    failed: int = 0
    opened: list[bool] = field(default_factory=list)

    @contextmanager
    def __call__(self, *, write: bool = False) -> Iterator[UnitOfWork]:
        self.opened.append(write)
        with self.real(write=write) as uow:
            if not write:
                yield uow
                return
            try:
                yield _CommitFails(uow)
            except OperationalError:
                self.failed += 1
                raise

    def check(self) -> None:
        self.real.check()


def failing_image_service(container: Container) -> tuple[ImageService, FailingWrites]:
    failing = FailingWrites(container.uow)
    port: UnitOfWorkFactory = failing
    service = ImageService(
        uow=port,
        blobs=container.blobs,
        processor=PillowImageProcessor(max_pixels=50_000_000, max_frames=1000),
        fetcher=FakeFetcher(),
        clock=container.clock,
        new_id=new_id,
        limits=container.limits,
        decode_slots=2,
    )
    return service, failing


def test_failed_commit_removes_new_blobs_and_keeps_shared_ones(api: Api) -> None:
    c = api.container
    model_id = create_model(api.client, api.headers)
    url = f"/v1/models/{model_id}/data"
    kept = imagefactory.jpeg(64, 48)
    assert api.client.post(url, content=kept, headers=api.headers).status_code == 201
    before = set(blob_files(c.settings))
    assert len(before) >= 2

    real_images = c.images
    c.images, failing = failing_image_service(c)
    try:
        fresh = api.client.post(url, content=imagefactory.png(80, 60), headers=api.headers)
        same = api.client.post(url, content=kept, headers=api.headers)
    finally:
        c.images = real_images

    for refused in (fresh, same):
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"].isdigit()
        assert refused.json()["error"]["code"] == "unavailable"
    assert failing.failed == 2
    assert row_count(c) == 1
    # The PNG's blobs are gone; the JPEG's, which the first row still uses, are all there.
    assert set(blob_files(c.settings)) == before == referenced_keys(c)
    assert temp_files(c.settings) == []
    # And the service works again once the database does.
    again = api.client.post(url, content=imagefactory.png(80, 60), headers=api.headers)
    assert again.status_code == 201
    assert set(blob_files(c.settings)) == referenced_keys(c)


# --- (b) a crash between blob write and commit; the sweep tidies up ---------------------


def test_sweep_cli_removes_what_a_crash_left_and_keeps_referenced_blobs(api: Api) -> None:
    c, settings = api.container, api.container.settings
    model_id = create_model(api.client, api.headers)
    added = api.client.post(
        f"/v1/models/{model_id}/data", content=imagefactory.jpeg(64, 48), headers=api.headers
    )
    assert added.status_code == 201
    referenced = referenced_keys(c)

    # What a process killed after writing its blobs but before committing leaves behind:
    orphan = c.blobs.put_bytes(b"bytes of an upload that never got its row").key
    in_flight = c.blobs.put_bytes(b"an upload committing right now").key
    stale_temp = settings.data_dir / "blobs" / "tmp" / "tmpcrashed"
    stale_temp.write_bytes(b"half a blob")
    fresh_temp = settings.data_dir / "blobs" / "tmp" / "tmpwriting"
    fresh_temp.write_bytes(b"being written")
    files = blob_files(settings)
    for key in {*referenced, orphan}:
        make_old(files[key])
    make_old(stale_temp)

    result = CliRunner().invoke(
        cli,
        ["blobs", "sweep", "--data-dir", str(settings.data_dir)],
        env={"LORAFORGE_DATABASE_URL": settings.resolved_database_url()},
    )

    assert result.exit_code == 0, result.output
    assert "removed 1" in result.output
    assert "removed 1 stale temp files" in result.output
    assert set(blob_files(settings)) == referenced | {in_flight}  # young blobs are spared
    assert not stale_temp.exists()
    assert fresh_temp.exists()
    # After the "restart", no row points at a missing blob: every link still serves bytes.
    fresh_temp.unlink()
    listed = api.client.get(f"/v1/models/{model_id}/data", headers=api.headers).json()
    for item in listed:
        got = api.client.get(item["url"])
        assert got.status_code == 200
        assert len(got.content) == item["bytes"]


def test_sweep_survives_a_temp_file_finishing_during_the_listing(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload in flight renames its temp file away between the sweep's listing and its
    look at the file: the sweep must carry on, not fail."""
    tmp = container.settings.data_dir / "blobs" / "tmp"
    stale = tmp / "tmpstale"
    stale.write_bytes(b"left by a crash")
    make_old(stale)
    real_iterdir = Path.iterdir

    def listing_with_a_finished_upload(self: Path) -> Iterator[Path]:
        yield from real_iterdir(self)
        if self == tmp:
            yield tmp / "tmp-finished-meanwhile"  # listed, then renamed into place

    monkeypatch.setattr(Path, "iterdir", listing_with_a_finished_upload)
    report = container.sweeper.sweep()
    assert report.temp_files_removed == 1
    assert not stale.exists()


def test_identical_bytes_removed_while_being_stored_are_stored_again(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete of the last image using some bytes races with a new upload of the same bytes:
    the upload must end up with its blob on disk, not with a 503."""
    first = container.blobs.put_bytes(b"shared bytes")
    path = blob_files(container.settings)[first.key]
    real_utime = os.utime

    def removed_just_before(target: object, *args: object, **kwargs: object) -> None:
        if target == path:
            container.blobs.delete(first.key)  # the concurrent delete wins the race
        real_utime(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "utime", removed_just_before)
    again = container.blobs.put_bytes(b"shared bytes")
    monkeypatch.undo()
    assert again.key == first.key
    assert again.created  # written anew: the caller owns it (and discards it on failure)
    with container.blobs.open(first.key) as stream:
        assert stream.read() == b"shared bytes"
    assert temp_files(container.settings) == []


# --- (c) the database is down -----------------------------------------------------------


class TcpProxy:
    """Forwards a local port to the database; ``stop()`` cuts every connection and refuses
    new ones (the database is "down"), ``start()`` brings it back on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def assert_unavailable(client: TestClient, headers: dict[str, str], signed_url: str) -> None:
    """Every call that needs the database answers 503 with Retry-After, nothing else."""
    calls = [
        client.get("/v1/models", headers=headers),
        client.post("/v1/models", json={"displayName": "x"}, headers=headers),
        client.post("/v1/images?type=modelInput", content=b"x", headers=headers),
        client.get(signed_url),
        client.get("/readyz"),
    ]
    for response in calls:
        assert response.status_code == 503, (response.request.url, response.text)
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["code"] == "unavailable"
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    assert client.get("/v1/models").status_code == 401  # no key: refused before any query


def upload_and_link(client: TestClient, headers: dict[str, str], model_id: str) -> str:
    added = client.post(
        "/v1/images",
        params={"modelId": model_id, "type": "modelInput"},
        content=imagefactory.jpeg(32, 24),
        headers=headers,
    )
    assert added.status_code == 201, added.text
    url: str = added.json()["url"]
    return url


def test_postgres_down_gives_503_then_recovers_without_restart(
    tmp_path: Path, postgres_databases: PostgresDatabases
) -> None:
    name = postgres_databases.create()
    real = make_url(postgres_databases.sqlalchemy_url(name))
    proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432))
    proxy.start()
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, signing_secret="s")
    container = build(settings)
    try:
        headers = {"Authorization": f"Bearer {container.keys.create(name='pg').plaintext}"}
        with TestClient(create_app(container=container)) as client:
            model_id = create_model(client, headers)
            link = upload_and_link(client, headers, model_id)

            proxy.stop()
            assert_unavailable(client, headers, link)
            assert row_count_safe(container) is None

            proxy.start()
            assert client.get("/readyz").status_code == 200
            assert client.get(link).status_code == 200
            upload_and_link(client, headers, model_id)
            assert set(blob_files(settings)) == referenced_keys(container)
    finally:
        container.close()
        proxy.stop()
        postgres_databases.drop(name)


def row_count_safe(container: Container) -> int | None:
    try:
        return row_count(container)
    except OperationalError:
        return None


def test_sqlite_missing_gives_503_then_recovers_without_restart(
    tmp_path: Path, sqlite_databases: SqliteDatabases
) -> None:
    db_dir = tmp_path / "not-mounted-yet"
    url = f"sqlite:///{db_dir / 'loraforge.db'}"
    settings = Settings(data_dir=tmp_path / "data", database_url=url, signing_secret="s")
    container = build(settings)
    try:
        headers = {"Authorization": "Bearer lf_" + "x" * 43}
        with TestClient(create_app(container=container)) as client:
            sig = container.links.sign("some-image", ImageVariant.ORIGINAL)
            signed = f"/v1/images/some-image/content?expires={sig.expires}&sig={sig.sig}"
            assert_unavailable(client, headers, signed)

            db_dir.mkdir()  # the volume comes back
            assert sqlite_databases.create(db_dir) == url
            assert client.get("/readyz").status_code == 200
            good = {"Authorization": f"Bearer {container.keys.create(name='back').plaintext}"}
            model_id = create_model(client, good)
            link = upload_and_link(client, good, model_id)
            assert client.get(link).status_code == 200
    finally:
        container.close()


# --- (d) the disk is full ---------------------------------------------------------------


@dataclass
class SmallDisk:
    """A 1 MiB file system for the blob store: a real tmpfs where we may mount one, else
    an emulation that fails ``fsync`` with ENOSPC once the files under ``root`` exceed it."""

    root: Path
    capacity: int
    mounted: bool

    def free(self) -> int:
        if self.mounted:
            st = os.statvfs(self.root)
            return st.f_bavail * st.f_frsize
        used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return self.capacity - used

    def fill(self, *, leave: int) -> Path:
        """Write a filler file so that about ``leave`` bytes stay free."""
        filler = self.root / "filler"
        with filler.open("ab") as out:
            while (gap := self.free() - leave) > 0:
                out.write(b"\0" * min(gap, 64 * 1024))
                out.flush()
                os.fsync(out.fileno())
        return filler


@pytest.fixture
def small_disk(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmallDisk]:
    root = settings.data_dir / "blobs"
    root.mkdir(parents=True)
    capacity = 1024 * 1024
    try:
        mount = ["mount", "-t", "tmpfs", "-o", f"size={capacity}", "tmpfs", str(root)]
        mounted = subprocess.run(mount, capture_output=True, check=False).returncode == 0
    except OSError:  # no mount command
        mounted = False
    if mounted:
        try:
            yield SmallDisk(root=root, capacity=capacity, mounted=True)
        finally:
            if subprocess.run(["umount", str(root)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(root)], check=True)
        return
    disk = SmallDisk(root=root, capacity=capacity, mounted=False)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and disk.free() < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield disk


def noise_png(side: int) -> bytes:
    im = PILImage.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    im.save(out, "PNG", compress_level=1)
    return out.getvalue()


def test_disk_full_gives_507_and_leaves_no_temp_file(
    small_disk: SmallDisk, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = build(settings)
    try:
        key = container.keys.create(name="disk").plaintext
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(create_app(container=container)) as client:
            model_id = create_model(client, headers)
            url = f"/v1/models/{model_id}/data"

            # 1. The original alone does not fit.
            too_big = noise_png(620)
            assert len(too_big) > small_disk.capacity
            full = client.post(url, content=too_big, headers=headers)
            assert full.status_code == 507, full.text
            assert full.json()["error"]["code"] == "insufficient_storage"
            assert blob_files(settings) == {}
            assert temp_files(settings) == []

            # 2. The original fits, its display variant no longer does: the original goes too.
            original = noise_png(400)
            filler = small_disk.fill(leave=len(original) + 64 * 1024)
            puts: list[str] = []
            real_put = container.blobs.put_file

            def spy(source: BinaryIO) -> StoredBlob:
                try:
                    stored = real_put(source)
                except DomainError as exc:
                    puts.append(exc.code)
                    raise
                puts.append("stored")
                return stored

            monkeypatch.setattr(container.blobs, "put_file", spy)
            midway = client.post(url, content=original, headers=headers)
            assert midway.status_code == 507, midway.text
            assert puts == ["stored", "insufficient_storage"]
            assert blob_files(settings) == {}
            assert temp_files(settings) == []
            assert row_count(container) == 0

            # 3. Space comes back: the same upload now works, without a restart.
            filler.unlink()
            assert client.post(url, content=original, headers=headers).status_code == 201
            assert set(blob_files(settings)) == referenced_keys(container)
            assert client.get("/readyz").status_code == 200
    finally:
        container.close()
