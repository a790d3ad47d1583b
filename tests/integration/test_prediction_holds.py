"""A prediction's input pictures are held until it ends, never after, never less.

Its end drops its holds and then removes the pictures' blobs nothing else references; the
sweep removes unreferenced ones. Neither may take a blob that a queued prediction holds: one
that shares the picture (the same data URI), committed while the removal was under way, still
reads its picture when it runs. On SQLite and on PostgreSQL, through the real services.
"""

from __future__ import annotations

import base64
import threading

from sqlalchemy import delete
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import PredictionBlobRow
from loraforge.bootstrap import Container, build_worker
from loraforge.domain.entities import Principal
from loraforge.domain.errors import NotFound
from loraforge.domain.work import Prediction, RunStatus, ScaleConfig, TrainingSpeed
from loraforge.services.blob_refs import BlobReferences
from loraforge.services.prediction_inputs import InputRequest
from loraforge.services.predictions import PredictionRequest
from loraforge.services.worker import Worker
from tests import imagefactory
from tests.blob_checks import assert_committed_blobs_exist
from tests.integration import test_blob_lifetime
from tests.integration.test_blob_lifetime import HeldRemovals, upload
from tests.ml_fakes import FakeGenerator, FakeTrainer

ROUNDS = 3

# The removals held at their unlink, in a container with no sweep grace.
held, c = test_blob_lifetime.held, test_blob_lifetime.c


class Studio:
    """One account with a trained model, making img2img predictions from data URIs."""

    def __init__(self, c: Container) -> None:
        self.c = c
        self.generator = FakeGenerator()
        self.worker = self.new_worker("w-1")
        self.who: Principal = c.keys.authenticate(c.keys.create(name="holds").plaintext)
        model = c.models.create(self.who, display_name="m")
        upload(c, self.who, model.id, imagefactory.jpeg(40, 30))
        training = c.trainings.start(self.who, model.id, strength=0, speed=TrainingSpeed.FAST)
        self.run_all()
        self.config = ScaleConfig("a", 0.8, model.id, training.id)

    def new_worker(self, owner: str) -> Worker:
        return build_worker(self.c, trainer=FakeTrainer(), generator=self.generator, owner=owner)

    def run_all(self, worker: Worker | None = None) -> None:
        while (worker or self.worker).run_once():
            pass

    def img2img(self, picture: bytes) -> Prediction:
        data_uri = "data:image/png;base64," + base64.b64encode(picture).decode()
        request = PredictionRequest(
            scale_configs=[self.config],
            prompt="a red square",
            seed=7,
            width=64,
            height=64,
            num_images=1,
            output_format="png",
            guidance_scale=5.0,
            num_inference_steps=2,
            inputs=InputRequest(init_image=data_uri, strength=0.5),
        )
        return self.c.predictions.create(self.who, request)

    def key(self, prediction: Prediction) -> str:
        assert prediction.init_image is not None
        return prediction.init_image.blob_key

    def succeeded(self, prediction: Prediction) -> None:
        done = self.c.predictions.get(self.who, prediction.id)
        assert done.status is RunStatus.SUCCEEDED, done.error

    def exists(self, key: str) -> bool:
        try:
            self.c.blobs.size(key)
        except NotFound:
            return False
        return True


def test_an_ending_prediction_racing_an_identical_img2img(c: Container, held: HeldRemovals) -> None:
    """The first prediction's end is about to unlink the picture it no longer holds when a
    second prediction of the same picture commits: the second one keeps it."""
    studio = Studio(c)
    for n in range(ROUNDS):
        picture = imagefactory.png(40 + n, 30)
        first = studio.img2img(picture)
        second: list[Prediction] = []

        held.race(studio.run_all, lambda: second.append(studio.img2img(picture)))  # noqa: B023

        studio.succeeded(first)
        key = studio.key(second[0])
        assert studio.key(first) == key
        assert studio.exists(key)
        assert_committed_blobs_exist(c)
        studio.run_all()
        studio.succeeded(second[0])
        assert studio.generator.specs[-1].init_image is not None
        assert not studio.exists(key)  # both ended: nothing holds it any more
        held.reached.clear()
        held.writer_done.clear()


def test_the_sweep_racing_an_identical_img2img(c: Container, held: HeldRemovals) -> None:
    """A picture left unreferenced (an end whose removal failed, say) is being swept when a
    prediction of the same picture commits: it is stored again and the run reads it."""
    studio = Studio(c)
    for n in range(ROUNDS):
        picture = imagefactory.png(40 + n, 30)
        orphaned = studio.img2img(picture)
        with Session(c.uow.engine) as s, s.begin():  # its holds gone, its blob left behind
            s.execute(
                delete(PredictionBlobRow).where(PredictionBlobRow.prediction_id == orphaned.id)
            )
        second: list[Prediction] = []

        held.race(c.sweeper.sweep, lambda: second.append(studio.img2img(picture)))  # noqa: B023

        assert studio.exists(studio.key(second[0]))
        assert_committed_blobs_exist(c)
        studio.run_all()
        studio.succeeded(second[0])
        held.reached.clear()
        held.writer_done.clear()


def test_predictions_ending_together_under_removals_keep_a_shared_picture(
    c: Container,
) -> None:
    """Several predictions of one picture, run by two workers at once while another removal
    of that picture loops (the sweep's step, without its removal of other writers' temporary
    files, which a zero grace would allow): each reads the picture (a queued one never loses
    it), and once all ended it is gone."""
    studio = Studio(c)
    workers = [studio.worker, studio.new_worker("w-2")]
    removals = BlobReferences(uow=c.uow, blobs=c.blobs)
    for n in range(ROUNDS):
        predictions = [studio.img2img(imagefactory.png(40 + n, 30)) for _ in range(4)]
        key = studio.key(predictions[0])
        done = threading.Event()

        def remove(key: str = key, done: threading.Event = done) -> None:
            while not done.is_set():
                removals.release({key})

        remover = threading.Thread(target=remove)
        runners = [threading.Thread(target=studio.run_all, args=(w,)) for w in workers]
        remover.start()
        for t in runners:
            t.start()
        for t in runners:
            t.join(60)
        done.set()
        remover.join(60)

        for prediction in predictions:
            studio.succeeded(prediction)
        assert not studio.exists(key)
        assert_committed_blobs_exist(c)
