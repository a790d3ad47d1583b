"""A world of fakes for the use-case tests of trainings, predictions and caption runs: the
services, the runners behind a real ``Worker`` (fake trainer, generator and captioner), and a job
queue that records what it was handed and whether the job was committed by then."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraforge.adapters.ml.lora_files import SafetensorsLoraFiles
from loraforge.adapters.signing.ed25519 import Ed25519Signer
from loraforge.domain.entities import Limits, Principal
from loraforge.domain.work import (
    RUN_KINDS,
    JobKind,
    Prediction,
    RunStatus,
    ScaleConfig,
    Training,
    TrainingSpeed,
    WebhookDelivery,
)
from loraforge.ports import Captioner, Generator
from loraforge.services.caption_runs import CaptionRunner
from loraforge.services.captions import CaptionService
from loraforge.services.dataset_check import DatasetService
from loraforge.services.images import ImageService
from loraforge.services.inspections import InspectionQueue, InspectionRunner
from loraforge.services.jobs import JobService
from loraforge.services.links import LinkSigner
from loraforge.services.lora_cache import LoraCache
from loraforge.services.prediction_runs import PredictionRunner
from loraforge.services.predictions import PredictionRequest, PredictionService
from loraforge.services.receipts import ReceiptService
from loraforge.services.run_events import RunEvents
from loraforge.services.signing_keys import SigningKeyService
from loraforge.services.training_image_jobs import TrainingImageJobs
from loraforge.services.training_images import TrainingImageService
from loraforge.services.training_runs import TrainingRunner
from loraforge.services.trainings import TrainingService
from loraforge.services.webhooks import WebhookService
from loraforge.services.weights import WeightsService
from loraforge.services.worker import JobHandler, Worker
from tests.fakes import (
    FakeBaseModelCatalog,
    FakeBaseModelHasher,
    FakeClock,
    FakeFetcher,
    FakeIds,
    FakeImageProcessor,
    FakeInspector,
    FakeUnitOfWorkFactory,
    InMemoryBlobStore,
    RecordingJobQueue,
    seed_account,
)
from tests.integration.repositories import entities
from tests.ml_fakes import FakeGenerator, FakeTrainer

ME = "acct-me"
OTHER = "acct-other"
WHO = Principal(account_id=ME, key_id="key-me")
STRANGER = Principal(account_id=OTHER, key_id="key-other")
HOOK = "https://hooks.example/runs"
LEASE_S = 30
MAX_ATTEMPTS = 2
MIN_IMAGES = 2


class _NoSender:
    """Webhooks are only queued here; their delivery is test_webhooks' business."""

    def post_json(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        raise AssertionError("no webhook is delivered in these tests")


@dataclass
class WorkWorld:
    clock: FakeClock
    uow: FakeUnitOfWorkFactory
    blobs: InMemoryBlobStore
    queue: RecordingJobQueue
    jobs: JobService
    images: ImageService
    captions: CaptionService
    training_images: TrainingImageService
    trainings: TrainingService
    predictions: PredictionService
    trainer: FakeTrainer
    caption_runner: CaptionRunner
    worker: Worker
    inspector: FakeInspector
    dataset: DatasetService
    catalog: FakeBaseModelCatalog
    events: RunEvents

    def model(self, model_id: str = "m-1", *, images: int = 1, base_model: str = "tiny") -> str:
        """A model of ``ME`` with ``images`` training images (their bytes stored)."""
        with self.uow(write=True) as tx:
            tx.models.add(dataclasses.replace(entities.model(model_id), base_model=base_model))
            for n in range(images):
                image = entities.image(f"{model_id}-img-{n}", model_id, t=n)  # upload order
                # Its display bytes, which the trainer reads (entities' keys hash their labels).
                self.blobs.put_bytes(f"{image.id}:display".encode())
                tx.images.add(image)
            tx.commit()
        return model_id

    def start(self, model_id: str = "m-1", **options: Any) -> Training:
        options.setdefault("strength", 0)
        options.setdefault("speed", TrainingSpeed.FAST)
        return self.trainings.start(WHO, model_id, **options)

    def trained(self, model_id: str = "m-1", *, base_model: str = "tiny") -> Training:
        """A model with a succeeded training."""
        self.model(model_id, base_model=base_model)
        training = self.start(model_id)
        assert self.run_jobs() == 1
        assert self.training(training.id).status is RunStatus.SUCCEEDED
        return self.training(training.id)

    def run_jobs(self, kinds: Collection[JobKind] = RUN_KINDS) -> int:
        ran = 0
        while self.worker.run_once(kinds):
            ran += 1
        return ran

    def exhaust_attempts(self) -> None:
        """Workers claim the next job and die, until it has no attempt left."""
        for _ in range(MAX_ATTEMPTS):
            assert self.jobs.claim("dying-worker") is not None
            self.clock.advance(LEASE_S + 1)

    def training(self, training_id: str) -> Training:
        return self.uow.state.trainings[training_id]

    def prediction(self, prediction_id: str) -> Prediction:
        return self.uow.state.predictions[prediction_id]

    def webhooks(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The queued webhook deliveries: (event, data), oldest first."""
        for delivery in self.deliveries():
            yield delivery.event, json.loads(delivery.body)["data"]

    def deliveries(self) -> list[WebhookDelivery]:
        """The queued webhook deliveries, oldest first (a run's in sequence order)."""
        return sorted(
            self.uow.state.webhooks.values(), key=lambda d: (d.created_at, d.sequence or 0)
        )


def request(training: Training, **changes: Any) -> PredictionRequest:
    """A prediction of one scale config on ``training``."""
    fields: dict[str, Any] = {
        "scale_configs": [
            ScaleConfig(key="1", scale=0.8, model_id=training.model_id, training_id=training.id)
        ],
        "prompt": "a summer dress",
        "seed": None,
        "width": 64,
        "height": 64,
        "num_images": 2,
        "output_format": "png",
        "guidance_scale": 7.5,
        "num_inference_steps": 4,
    }
    return PredictionRequest(**(fields | changes))


def make_world(
    tmp_path: Path,
    *,
    generator: Generator | None = None,
    unrunnable: str | None = None,
    captioner: Captioner | None = None,
    configured: bool | None = None,
) -> WorkWorld:
    """``unrunnable``: why no worker could run jobs (JobService refuses new ones with it).
    ``captioner``: the worker's captioning model; ``configured``: whether the server has one
    (default: whether the worker has)."""
    clock, uow, ids = FakeClock(), FakeUnitOfWorkFactory(), FakeIds()
    seed_account(uow, ME)
    seed_account(uow, OTHER)
    blobs, queue, catalog = InMemoryBlobStore(clock), RecordingJobQueue(uow), FakeBaseModelCatalog()
    jobs = JobService(
        uow=uow,
        clock=clock,
        new_id=FakeIds("job"),
        lease_s=LEASE_S,
        max_attempts=MAX_ATTEMPTS,
        unrunnable=unrunnable,
    )
    webhooks = WebhookService(
        uow=uow, sender=_NoSender(), clock=clock, new_id=FakeIds("hook"), retry_window_s=60
    )
    events = RunEvents(
        webhooks=webhooks,
        links=LinkSigner(secret=b"links", ttl_s=3600, clock=clock),
        public_url="https://lf.example",
    )
    captions = CaptionService(
        uow=uow,
        jobs=jobs,
        queue=queue,
        clock=clock,
        new_id=FakeIds("captions"),
        available=captioner is not None if configured is None else configured,
    )
    followups = TrainingImageJobs(captions=captions, inspections=InspectionQueue(jobs=jobs))
    images = ImageService(
        uow=uow,
        blobs=blobs,
        processor=FakeImageProcessor(),
        fetcher=FakeFetcher(),
        clock=clock,
        new_id=FakeIds("img"),
        limits=Limits(),
        decode_slots=1,
        followups=followups,
    )
    trainer, inspector = FakeTrainer(), FakeInspector()
    dataset = DatasetService(
        uow=uow, blobs=blobs, inspector=inspector, catalog=catalog, min_images=MIN_IMAGES
    )
    trainings = TrainingService(
        uow=uow,
        jobs=jobs,
        queue=queue,
        blobs=blobs,
        catalog=catalog,
        dataset=dataset,
        clock=clock,
        new_id=ids,
        events=events,
    )
    lora_cache = LoraCache(folder=tmp_path / "loras", uow=uow, blobs=blobs)
    runners: list[JobHandler] = [
        TrainingRunner(
            uow=uow,
            jobs=jobs,
            blobs=blobs,
            trainer=trainer,
            catalog=catalog,
            events=events,
            clock=clock,
            workdir=tmp_path / "trainings",
            receipts=ReceiptService(
                uow=uow,
                trainings=trainings,
                weights=WeightsService(
                    uow=uow,
                    trainings=trainings,
                    blobs=blobs,
                    catalog=catalog,
                    files=SafetensorsLoraFiles(),
                ),
                keys=SigningKeyService(uow=uow, signer=Ed25519Signer(), clock=clock),
                catalog=catalog,
                hasher=FakeBaseModelHasher(),
                clock=clock,
            ),
        ),
        PredictionRunner(
            uow=uow,
            jobs=jobs,
            blobs=blobs,
            images=images,
            generator=generator or FakeGenerator(),
            catalog=catalog,
            events=events,
            clock=clock,
            lora_cache=lora_cache,
        ),
        InspectionRunner(uow=uow, jobs=jobs, dataset=dataset),
    ]
    caption_runner = CaptionRunner(
        uow=uow, jobs=jobs, blobs=blobs, captioner=captioner, events=events, clock=clock
    )
    return WorkWorld(
        clock=clock,
        uow=uow,
        blobs=blobs,
        queue=queue,
        jobs=jobs,
        images=images,
        captions=captions,
        training_images=TrainingImageService(
            uow=uow, blobs=blobs, clock=clock, new_id=ids, limits=Limits(), followups=followups
        ),
        trainings=trainings,
        inspector=inspector,
        dataset=dataset,
        catalog=catalog,
        predictions=PredictionService(
            uow=uow,
            jobs=jobs,
            queue=queue,
            clock=clock,
            new_id=ids,
            catalog=catalog,
            pictures=images.inputs,
        ),
        trainer=trainer,
        events=events,
        caption_runner=caption_runner,
        worker=Worker(
            jobs=jobs,
            handlers=[*runners, caption_runner],
            webhooks=webhooks,
            queue=queue,
            owner="test-worker",
            heartbeat_s=60,
        ),
    )
