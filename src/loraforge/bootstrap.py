"""Composition root: the only place that picks adapters. Tests pass their own overrides."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio

from loraforge import extras
from loraforge.adapters.captioning.transformers_captioner import TransformersCaptioner
from loraforge.adapters.db.engine import DbTimeouts, make_engine
from loraforge.adapters.db.migrate import upgrade
from loraforge.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from loraforge.adapters.fetch.safe_http import SafeHttpFetcher
from loraforge.adapters.imaging.inspection import OpenCvInspector
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.adapters.imaging.sample_sheet import PillowSampleSheets
from loraforge.adapters.ml.base_model_hashes import CachedBaseModelHasher
from loraforge.adapters.ml.lora_files import SafetensorsLoraFiles
from loraforge.adapters.ml.registry import BaseModelRegistry
from loraforge.adapters.queue.inline import InlineJobQueue
from loraforge.adapters.signing.ed25519 import Ed25519Signer
from loraforge.adapters.storage.local import LocalBlobStore
from loraforge.domain.entities import Limits
from loraforge.ports import (
    BaseModelCatalog,
    BlobStore,
    Captioner,
    Clock,
    Generator,
    IdFactory,
    ImageInspector,
    ImageProcessor,
    JobQueue,
    Trainer,
    UrlFetcher,
    WebhookSender,
)
from loraforge.services.archives import MAX_RATIO, ArchiveLimits
from loraforge.services.blobs import BlobSweeper
from loraforge.services.caption_runs import CaptionRunner
from loraforge.services.captions import CaptionService
from loraforge.services.clock import SystemClock, new_id
from loraforge.services.dataset_check import DatasetService
from loraforge.services.decode_slots import DecodeSlots
from loraforge.services.exports import ExportService
from loraforge.services.fetch_slots import FetchSlots
from loraforge.services.images import ImageService
from loraforge.services.inspections import InspectionQueue, InspectionRunner
from loraforge.services.jobs import JobService
from loraforge.services.keys import FailureLimiter, KeyService
from loraforge.services.links import LinkSigner, signing_secret
from loraforge.services.lora_cache import LoraCache
from loraforge.services.models import ModelService
from loraforge.services.prediction_runs import PredictionRunner
from loraforge.services.predictions import PredictionService
from loraforge.services.provenance import ProvenanceService
from loraforge.services.receipts import ReceiptService
from loraforge.services.retention import RetentionService
from loraforge.services.run_events import RunEvents
from loraforge.services.signing_keys import SigningKeyService
from loraforge.services.training_archives import TrainingArchives
from loraforge.services.training_image_jobs import TrainingImageJobs
from loraforge.services.training_images import TrainingImageService
from loraforge.services.training_outputs import TrainingOutputs
from loraforge.services.training_runs import TrainingRunner
from loraforge.services.training_samples import SampleRecorder
from loraforge.services.trainings import TrainingService
from loraforge.services.webhooks import WebhookService
from loraforge.services.weights import WeightsService
from loraforge.services.worker import JobHandler, Worker
from loraforge.settings import Settings

ML_UNAVAILABLE = (
    "This server cannot run trainings and predictions: its workers need the 'ml' extra "
    "(pip install 'loraforge[ml]')."
)


@dataclass
class Container:
    settings: Settings
    limits: Limits
    clock: Clock
    uow: SqlUnitOfWorkFactory
    blobs: BlobStore
    keys: KeyService
    auth_failures: FailureLimiter
    models: ModelService
    images: ImageService
    links: LinkSigner
    sweeper: BlobSweeper
    catalog: BaseModelCatalog
    queue: JobQueue
    jobs: JobService
    trainings: TrainingService
    weights: WeightsService
    predictions: PredictionService
    webhooks: WebhookService
    events: RunEvents  # lifecycle webhooks of trainings and predictions
    retention: RetentionService
    training_images: TrainingImageService
    captions: CaptionService
    # The captioning model workers caption with (None: none configured); never used in requests.
    captioner: Captioner | None
    dataset: DatasetService
    training_archives: TrainingArchives
    training_outputs: TrainingOutputs  # samples, checkpoints, sample sheets (issue 13 §2)
    # Threads URL uploads run on (http.url_uploads), apart from the API's default pool.
    fetch_threads: anyio.CapacityLimiter
    # Provenance (issue 13 §5, §3): the signing key, receipts, lineage and erasure, exports.
    signing_keys: SigningKeyService
    receipts: ReceiptService
    provenance: ProvenanceService
    exports: ExportService
    # This process's copies of LoRA weights (the workers' generators load files): work/loras.
    lora_cache: LoraCache

    def close(self) -> None:
        self.images.close()
        self.uow.engine.dispose()


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_request_bytes=settings.max_request_bytes,
        max_data_bytes=settings.max_data_bytes,
        max_images_per_type=settings.max_images_per_type,
        max_pixels=settings.max_pixels,
        max_frames=settings.max_frames,
        max_page_size=settings.max_page_size,
    )


def archive_limits(settings: Settings) -> ArchiveLimits:
    """What a training-set ZIP may hold; any one file as much as one upload may be."""
    return ArchiveLimits(
        max_entries=settings.max_archive_entries,
        max_entry_bytes=settings.max_data_bytes,
        max_total_bytes=settings.max_archive_inflated_bytes,
        max_ratio=MAX_RATIO,
    )


def db_timeouts(settings: Settings) -> DbTimeouts:
    return DbTimeouts(
        connect_s=settings.db_connect_timeout_s,
        statement_s=settings.db_statement_timeout_s or None,
        pool_s=settings.db_pool_timeout_s,
    )


def migrate(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url(), connect_timeout_s=settings.db_connect_timeout_s)


def check_extras(settings: Settings, *, worker: bool = False) -> None:
    """Refuse (``MissingExtra``, one line) a configured part whose extra is not installed;
    ``worker``: this process trains and predicts."""
    if worker:
        extras.require("ml", by="The worker (it trains and predicts)")
    if settings.queue == "celery":
        extras.require("celery", by="LORAFORGE_QUEUE=celery")
    if settings.blob_store == "s3":
        extras.require("s3", by="LORAFORGE_BLOB_STORE=s3")
    if settings.captioning_model_dir is not None:
        extras.require("ml", by="LORAFORGE_CAPTIONING_MODEL_DIR")


def runs_ml(settings: Settings) -> bool:
    """Whether this installation's own workers (``LORAFORGE_WORKERS``) can train and predict.

    Without the ML extra the API still serves; ``serve`` then starts no workers, and new
    trainings and predictions answer ``ml_unavailable`` rather than waiting forever. With
    ``LORAFORGE_WORKERS=0`` workers elsewhere (with the extra) run them: they are queued.
    """
    return settings.workers == 0 or extras.installed("ml")


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ids: IdFactory = new_id,
    processor: ImageProcessor | None = None,
    fetcher: UrlFetcher | None = None,
    sender: WebhookSender | None = None,
    catalog: BaseModelCatalog | None = None,
    queue: JobQueue | None = None,
    captioner: Captioner | None = None,
    blobs: BlobStore | None = None,
    inspector: ImageInspector | None = None,
) -> Container:
    check_extras(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or SystemClock()
    limits = limits_from(settings)
    uow = SqlUnitOfWorkFactory(make_engine(settings.resolved_database_url(), db_timeouts(settings)))
    blobs = blobs or make_blob_store(settings)
    processor = processor or PillowImageProcessor(
        max_pixels=settings.max_pixels, max_frames=settings.max_frames
    )
    http = SafeHttpFetcher(
        total_timeout_s=settings.fetch_timeout_s,
        allow_hosts=frozenset(settings.fetch_allow_hosts),
    )
    fetcher = fetcher or http
    sender = sender or http
    catalog = catalog or BaseModelRegistry(
        config=settings.base_models_config, default=settings.default_base_model
    )
    queue = queue or make_queue(settings)
    if captioner is None and settings.captioning_model_dir is not None:
        captioner = TransformersCaptioner(
            settings.captioning_model_dir,
            prompt=settings.captioning_prompt,
            max_new_tokens=settings.captioning_max_new_tokens,
        )
    jobs = JobService(
        uow=uow,
        clock=clock,
        new_id=ids,
        lease_s=settings.job_lease_s,
        max_attempts=settings.job_max_attempts,
        unrunnable=None if runs_ml(settings) else ML_UNAVAILABLE,
    )
    captions = CaptionService(
        uow=uow,
        jobs=jobs,
        queue=queue,
        clock=clock,
        new_id=ids,
        available=captioner is not None and runs_ml(settings),
    )
    followups = TrainingImageJobs(captions=captions, inspections=InspectionQueue(jobs=jobs))
    dataset = DatasetService(
        uow=uow,
        blobs=blobs,
        inspector=inspector or OpenCvInspector(),
        catalog=catalog,
        min_images=settings.dataset_min_images,
    )
    # Origins whose images are deleted a while after their last use (seed 002: Runware).
    keep_after_use = {"runware": timedelta(days=settings.runware_retention_days)}
    images = ImageService(
        uow=uow,
        blobs=blobs,
        processor=processor,
        fetcher=fetcher,
        clock=clock,
        new_id=ids,
        limits=limits,
        decode_slots=settings.image_workers,
        track_use=frozenset(keep_after_use),
        decode_shares=DecodeSlots(
            slots=settings.image_workers,
            per_account=settings.image_workers_per_account or -(-settings.image_workers // 2),
            queue_per_account=settings.image_queue_per_account,
            wait_s=settings.image_wait_s,
        ),
        fetch_slots=FetchSlots(
            total=settings.fetch_slots,
            per_account=settings.fetch_slots_per_account,
            fetch_timeout_s=settings.fetch_timeout_s,
        ),
        followups=followups,
    )
    links = LinkSigner(
        secret=signing_secret(settings.signing_secret, settings.data_dir),
        ttl_s=settings.signed_url_ttl_s,
        clock=clock,
    )
    webhooks = WebhookService(
        uow=uow,
        sender=sender,
        clock=clock,
        new_id=ids,
        retry_window_s=settings.webhook_retry_window_s,
    )
    events = RunEvents(webhooks=webhooks, links=links, public_url=settings.public_url)
    trainings = TrainingService(
        uow=uow,
        jobs=jobs,
        queue=queue,
        blobs=blobs,
        catalog=catalog,
        dataset=dataset,
        clock=clock,
        new_id=ids,
        max_checkpoints=settings.max_checkpoints_per_training,
        events=events,
    )
    weights = WeightsService(
        uow=uow, trainings=trainings, blobs=blobs, catalog=catalog, files=SafetensorsLoraFiles()
    )
    signing_keys = SigningKeyService(uow=uow, signer=Ed25519Signer(), clock=clock)
    outputs = TrainingOutputs(uow=uow, trainings=trainings, blobs=blobs)
    lora_cache = LoraCache(folder=work_dir(settings) / "loras", uow=uow, blobs=blobs)
    return Container(
        settings=settings,
        limits=limits,
        clock=clock,
        uow=uow,
        blobs=blobs,
        keys=KeyService(uow=uow, clock=clock, new_id=ids, cache_s=settings.auth_cache_s),
        auth_failures=FailureLimiter(max_failures=settings.auth_max_failures),
        models=ModelService(uow=uow, clock=clock, new_id=ids, catalog=catalog, blobs=blobs),
        images=images,
        links=links,
        sweeper=BlobSweeper(uow=uow, blobs=blobs, clock=clock, grace_s=settings.blob_sweep_grace_s),
        catalog=catalog,
        queue=queue,
        jobs=jobs,
        trainings=trainings,
        weights=weights,
        predictions=PredictionService(
            uow=uow,
            jobs=jobs,
            queue=queue,
            clock=clock,
            new_id=ids,
            catalog=catalog,
            pictures=images.inputs,
        ),
        webhooks=webhooks,
        events=events,
        retention=RetentionService(
            uow=uow, images=images, clock=clock, keep_after_use=keep_after_use
        ),
        training_images=TrainingImageService(
            uow=uow, blobs=blobs, clock=clock, new_id=ids, limits=limits, followups=followups
        ),
        captions=captions,
        captioner=captioner,
        dataset=dataset,
        training_archives=TrainingArchives(
            images=images, dataset=dataset, blobs=blobs, limits=archive_limits(settings)
        ),
        fetch_threads=anyio.CapacityLimiter(settings.fetch_slots),
        signing_keys=signing_keys,
        receipts=ReceiptService(
            uow=uow,
            trainings=trainings,
            weights=weights,
            keys=signing_keys,
            catalog=catalog,
            hasher=CachedBaseModelHasher(),
            clock=clock,
        ),
        provenance=ProvenanceService(uow=uow, blobs=blobs, clock=clock, lora_cache=lora_cache),
        exports=ExportService(
            uow=uow, trainings=trainings, weights=weights, extras=[outputs.export_entries]
        ),
        training_outputs=outputs,
        lora_cache=lora_cache,
    )


def work_dir(settings: Settings) -> Path:
    """Where this process's workers keep their working files (training checkpoints, LoRA
    copies): under the data dir, so each machine has its own."""
    return settings.data_dir / "work"


def build_worker(
    container: Container,
    *,
    trainer: Trainer | None = None,
    generator: Generator | None = None,
    owner: str | None = None,
) -> Worker:
    """A worker over the container's services, with the real ML adapters unless given."""
    settings = container.settings
    if trainer is None or generator is None:
        check_extras(settings, worker=True)
        from loraforge.adapters.ml.generator import DiffusersGenerator
        from loraforge.adapters.ml.trainer import DiffusersLoraTrainer

        trainer = trainer or DiffusersLoraTrainer()
        generator = generator or DiffusersGenerator()
    work = work_dir(settings)
    container.lora_cache.prune()  # copies of trainings erased while no worker ran here
    handlers: list[JobHandler] = [
        TrainingRunner(
            uow=container.uow,
            jobs=container.jobs,
            blobs=container.blobs,
            trainer=trainer,
            catalog=container.catalog,
            events=container.events,
            clock=container.clock,
            workdir=work / "trainings",
            receipts=container.receipts,
            samples=SampleRecorder(
                uow=container.uow,
                jobs=container.jobs,
                blobs=container.blobs,
                outputs=container.images.outputs,
                sheets=PillowSampleSheets(),
            ),
        ),
        PredictionRunner(
            uow=container.uow,
            jobs=container.jobs,
            blobs=container.blobs,
            images=container.images,
            generator=generator,
            catalog=container.catalog,
            events=container.events,
            clock=container.clock,
            lora_cache=container.lora_cache,
        ),
        CaptionRunner(
            uow=container.uow,
            jobs=container.jobs,
            blobs=container.blobs,
            captioner=container.captioner,
            events=container.events,
            clock=container.clock,
        ),
        InspectionRunner(uow=container.uow, jobs=container.jobs, dataset=container.dataset),
    ]
    return Worker(
        jobs=container.jobs,
        handlers=handlers,
        webhooks=container.webhooks,
        queue=container.queue,
        owner=owner or f"{socket.gethostname()}:{os.getpid()}",
        poll_s=settings.worker_poll_s,
        heartbeat_s=settings.job_heartbeat_s,
    )


def make_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_store == "s3":
        from loraforge.adapters.storage.s3 import S3BlobStore

        assert settings.s3_bucket is not None  # Settings refuses s3 without a bucket
        return S3BlobStore(
            settings.s3_bucket,
            prefix=settings.s3_prefix or "",
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            timeout_s=settings.s3_timeout_s,
        )
    return LocalBlobStore(settings.data_dir / "blobs")


def make_queue(settings: Settings) -> JobQueue:
    if settings.queue == "celery":
        from loraforge.adapters.queue.celery_queue import CeleryJobQueue

        return CeleryJobQueue(
            settings.redis_url,
            queue=settings.celery_queue,
            requeue_every_s=settings.job_requeue_s,
            loglevel=settings.log_level,
        )
    return InlineJobQueue()
