"""A blob that a committed row references is never removed, whatever the interleaving.

Each test forces one interleaving that lost data before the blob guard: a removal (image
delete, replacement, retention, sweep) has checked that nothing references a blob and is held
just before it unlinks it, while a writer that reuses the same bytes (an identical upload, a
training pinning its images, a worker committing outputs or weights) runs. Without a guard that
both sides respect the writer commits, the unlink goes ahead, and the row points at nothing.
On SQLite and on PostgreSQL, through the real services and blob store.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import TrainingRow
from loraforge.bootstrap import Container, build, build_worker, make_blob_store
from loraforge.domain.entities import ALL_FORMATS, Image, ImageKind, Principal, StoredBlob
from loraforge.domain.errors import NotFound
from loraforge.domain.ml import BaseModel, TrainingSpec
from loraforge.domain.work import RunStatus, ScaleConfig, TrainingSpeed
from loraforge.ports import BlobStore
from loraforge.services.clock import new_id
from loraforge.services.images import Upload
from loraforge.services.predictions import PredictionRequest
from loraforge.settings import Settings
from tests import imagefactory
from tests.blob_checks import assert_committed_blobs_exist
from tests.ml_fakes import FakeGenerator, FakeTrainer

# How long a held removal waits for the writer before it goes ahead anyway: with a guard the
# writer is blocked by the removal (so it cannot finish first), without one it finishes at once.
HOLD_S = 1.0


class HeldRemovals:
    """A blob store whose ``delete`` can be held until a writer has had its chance."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.holding = False
        self.reached = threading.Event()  # a held delete is about to unlink
        self.writer_done = threading.Event()
        self.deleted: list[str] = []

    def delete(self, key: str) -> None:
        if self.holding:
            self.reached.set()
            self.writer_done.wait(HOLD_S)
        self.deleted.append(key)
        self.inner.delete(key)

    def put_file(self, source: BinaryIO) -> StoredBlob:
        return self.inner.put_file(source)

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.inner.put_bytes(data)

    def open(self, key: str) -> BinaryIO:
        return self.inner.open(key)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def iter_keys(self, *, older_than: datetime) -> Iterator[str]:
        return self.inner.iter_keys(older_than=older_than)

    def check(self) -> None:
        self.inner.check()

    def remove_stale_temp_files(self, *, older_than: datetime) -> int:
        return self.inner.remove_stale_temp_files(older_than=older_than)

    def race(self, removal: Callable[[], object], writer: Callable[[], object]) -> None:
        """Run ``removal`` until it holds at an unlink, then ``writer``; wait for both."""
        self.holding = True
        errors: list[BaseException] = []

        def remove() -> None:
            try:
                removal()
            except BaseException as exc:  # re-raised in the test's thread
                errors.append(exc)
            finally:
                self.reached.set()

        thread = threading.Thread(target=remove)
        thread.start()
        assert self.reached.wait(30), "the removal never reached an unlink"
        try:
            writer()
        finally:
            self.writer_done.set()
            thread.join(30)
            self.holding = False
        assert not thread.is_alive()
        if errors:
            raise errors[0]


class FixedWeightsTrainer(FakeTrainer):
    """Writes the same weights whatever the seed, as two identical trainings would."""

    def train(self, spec: TrainingSpec, **kwargs: Any) -> Path:
        out = super().train(spec, **kwargs)
        out.write_bytes(b"the same weights")
        return out


class SlowCatalog:
    """The real catalog, with a pause when a training asks for its base model (after it has
    listed the model's images and before it commits)."""

    def __init__(self, inner: Container) -> None:
        self._inner = inner.catalog
        self.pause: Callable[[], None] | None = None

    def get(self, name: str) -> BaseModel:
        if self.pause is not None:
            self.pause()
        return self._inner.get(name)

    def list(self) -> list[BaseModel]:
        return self._inner.list()

    @property
    def default(self) -> str:
        return self._inner.default


@pytest.fixture
def held(settings: Settings) -> HeldRemovals:
    return HeldRemovals(make_blob_store(settings))


@pytest.fixture
def c(settings: Settings, held: HeldRemovals) -> Iterator[Container]:
    built = build(settings.model_copy(update={"blob_sweep_grace_s": 0}), blobs=held)
    yield built
    built.close()


@pytest.fixture
def who(c: Container) -> Principal:
    return c.keys.authenticate(c.keys.create(name="racer").plaintext)


def upload(c: Container, who: Principal, model_id: str, data: bytes) -> Image:
    return c.images.ingest(
        who,
        Upload(stream=io.BytesIO(data)),
        kind=ImageKind.TRAINING,
        model_id=model_id,
        allowed=ALL_FORMATS,
    )


def test_delete_racing_an_identical_upload(
    c: Container, held: HeldRemovals, who: Principal
) -> None:
    model = c.models.create(who, display_name="m")
    data = imagefactory.jpeg(40, 30)
    first = upload(c, who, model.id, data)
    second: list[Image] = []

    held.race(
        lambda: c.images.delete(who, first.id),
        lambda: second.append(upload(c, who, model.id, data)),
    )

    assert c.images.read_original(c.images.get(who, second[0].id)) == data
    assert_committed_blobs_exist(c)


def test_replacement_racing_an_upload_of_the_old_bytes(
    c: Container, held: HeldRemovals, who: Principal
) -> None:
    model = c.models.create(who, display_name="m")
    old, new = imagefactory.jpeg(40, 30), imagefactory.png(36, 20)
    first = upload(c, who, model.id, old)
    second: list[Image] = []

    held.race(
        lambda: c.images.replace(who, first.id, Upload(io.BytesIO(new)), allowed=ALL_FORMATS),
        lambda: second.append(upload(c, who, model.id, old)),
    )

    assert c.images.read_original(c.images.get(who, second[0].id)) == old
    assert c.images.read_original(c.images.get(who, first.id)) == new
    assert_committed_blobs_exist(c)


def test_sweep_racing_an_identical_upload(c: Container, held: HeldRemovals, who: Principal) -> None:
    model = c.models.create(who, display_name="m")
    data = imagefactory.jpeg(40, 30)
    orphan = c.blobs.put_bytes(data)  # left by a crash, say: no row references it
    second: list[Image] = []

    held.race(c.sweeper.sweep, lambda: second.append(upload(c, who, model.id, data)))

    assert second[0].original_key == orphan.key
    assert c.images.read_original(c.images.get(who, second[0].id)) == data
    assert_committed_blobs_exist(c)


def test_delete_racing_a_training_that_pins_the_image(
    settings: Settings, held: HeldRemovals
) -> None:
    """The training lists the model's images, the image is deleted with its bytes, then the
    training commits: it must not pin bytes that are gone."""
    c = build(settings, blobs=held)
    catalog = SlowCatalog(c)
    c.trainings._catalog = catalog  # the only seam between listing and commit
    try:
        who = c.keys.authenticate(c.keys.create(name="racer").plaintext)
        model = c.models.create(who, display_name="m")
        image = upload(c, who, model.id, imagefactory.jpeg(40, 30))
        deleted = threading.Event()

        def delete_while_listing() -> None:
            catalog.pause = None

            def delete() -> None:
                c.images.delete(who, image.id)
                deleted.set()

            threading.Thread(target=delete).start()
            deleted.wait(HOLD_S)  # SQLite: the delete waits for this write transaction

        catalog.pause = delete_while_listing
        training = c.trainings.start(who, model.id, strength=0, speed=TrainingSpeed.FAST)
        # The image was listed before it was deleted: the training keeps its bytes.
        assert [i["id"] for i in training.manifest["images"]] == [image.id]
        assert deleted.wait(30)
        assert_committed_blobs_exist(c)
    finally:
        c.close()


def test_output_delete_racing_an_identical_prediction(
    c: Container, held: HeldRemovals, who: Principal
) -> None:
    """The same seed gives the same bytes: a new prediction's outputs share the blobs of an
    earlier one whose outputs are being deleted."""
    worker = build_worker(c, trainer=FakeTrainer(), generator=FakeGenerator(), owner="t")
    model = c.models.create(who, display_name="m")
    upload(c, who, model.id, imagefactory.jpeg(40, 30))
    training = c.trainings.start(who, model.id, strength=0, speed=TrainingSpeed.FAST)
    while worker.run_once():
        pass
    assert c.trainings.get(who, model.id, training.id).status is RunStatus.SUCCEEDED

    def predict() -> str:
        request = PredictionRequest(
            scale_configs=[ScaleConfig("a", 0.8, model.id, training.id)],
            prompt="a red square",
            seed=7,
            width=64,
            height=64,
            num_images=1,
            output_format="png",
            guidance_scale=5.0,
            num_inference_steps=2,
        )
        prediction = c.predictions.create(who, request)
        while worker.run_once():
            pass
        done = c.predictions.get(who, prediction.id)
        assert done.status is RunStatus.SUCCEEDED, done.error
        return done.output_image_ids[0]

    first = predict()
    second: list[str] = []
    held.race(lambda: c.images.delete(who, first), lambda: second.append(predict()))

    output = c.images.get(who, second[0])
    assert c.images.read_original(output)
    assert_committed_blobs_exist(c)


def test_sweep_racing_a_training_that_stores_identical_weights(
    c: Container, held: HeldRemovals, who: Principal
) -> None:
    """Trainings of the same images with the same settings can write identical weights."""
    worker = build_worker(c, trainer=FixedWeightsTrainer(), generator=FakeGenerator(), owner="t")
    model = c.models.create(who, display_name="m")
    upload(c, who, model.id, imagefactory.jpeg(40, 30))
    first = c.trainings.start(who, model.id, strength=0, speed=TrainingSpeed.FAST)
    while worker.run_once():
        pass
    artifact = c.trainings.get(who, model.id, first.id).artifact_key
    assert artifact is not None
    # The first training's row goes (as a purge would), its weights are now an orphan.
    with Session(c.uow.engine) as s, s.begin():
        s.get_one(TrainingRow, first.id).artifact_key = None
    second = c.trainings.start(who, model.id, strength=0, speed=TrainingSpeed.FAST)

    def train() -> None:
        while worker.run_once():
            pass

    held.race(c.sweeper.sweep, train)

    done = c.trainings.get(who, model.id, second.id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.artifact_key == artifact
    with c.trainings.open_weights(who, model.id, second.id) as weights:
        assert weights.read() == b"the same weights"
    assert_committed_blobs_exist(c)


def test_delete_racing_a_copy_of_the_image_into_a_model(
    settings: Settings, held: HeldRemovals
) -> None:
    """Scenario adds a stored asset to a model as a training image by sharing its bytes. The
    copy reads the asset; the asset is deleted (its bytes checked unreferenced) before the
    copy commits: the copy must not be left pointing at bytes that are then removed."""
    pause: list[Callable[[], None]] = []

    def ids() -> str:
        if pause:
            pause.pop()()
        return new_id()

    c = build(settings, blobs=held, ids=ids)
    try:
        who = c.keys.authenticate(c.keys.create(name="racer").plaintext)
        model = c.models.create(who, display_name="m")
        asset = c.images.ingest(
            who,
            Upload(stream=io.BytesIO(imagefactory.jpeg(40, 30))),
            kind=ImageKind.REFERENCE,
            model_id=None,
            allowed=ALL_FORMATS,
        )
        copies: list[Image] = []
        done = threading.Event()

        def delete_meanwhile() -> None:
            # SQLite: the delete waits for the copy's write transaction and never gets here.
            held.holding = True

            def delete() -> None:
                c.images.delete(who, asset.id)
                done.set()

            threading.Thread(target=delete).start()
            held.reached.wait(HOLD_S)

        pause.append(delete_meanwhile)
        try:
            copies = c.training_images.copy_in(who, model.id, [asset.id], origin="scenario")
        except NotFound:
            pass  # refused: the asset went while it was being copied
        finally:
            held.writer_done.set()
        assert done.wait(30)
        assert_committed_blobs_exist(c)
        for copy in copies:
            assert c.images.read_original(c.images.get(who, copy.id))
    finally:
        c.close()
