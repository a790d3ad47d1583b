"""Trainings (seed 003): start with a frozen manifest, read, list, cancel, soft-delete."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, BinaryIO

from loraforge.domain.buckets import bucket_for
from loraforge.domain.captions import TrainingWords
from loraforge.domain.entities import Image, ImageKind, Model, Principal
from loraforge.domain.errors import Conflict, NotFound
from loraforge.domain.events import TRAINING_EVENTS, chosen_events
from loraforge.domain.ml import BaseModel
from loraforge.domain.work import JobKind, RunStatus, Training, TrainingSpeed
from loraforge.ports import (
    BaseModelCatalog,
    BlobStore,
    Clock,
    IdFactory,
    JobQueue,
    UnitOfWork,
    UnitOfWorkFactory,
)
from loraforge.services.base_models import base_model_named
from loraforge.services.blob_refs import BlobReferences
from loraforge.services.dataset_check import MAX_TRAINING_IMAGES, DatasetService, upload_order
from loraforge.services.jobs import JobService
from loraforge.services.run_events import RunEvents
from loraforge.services.training_plan import (
    DEFAULT_SAMPLE_PROMPT,
    Overrides,
    checked_sample_prompts,
    plan,
    sample_plan,
    tune,
)
from loraforge.services.training_samples import purge
from loraforge.services.webhook_urls import check_webhook_url

TRIGGER_ALPHABET = string.ascii_uppercase + string.digits
TRIGGER_LENGTH = 7


def new_trigger_word() -> str:
    """Seven upper-case letters and digits, like the seed's ``FJA90AB``; starts with a letter so
    tokenizers don't read it as a number."""
    first = secrets.choice(string.ascii_uppercase)
    return first + "".join(secrets.choice(TRIGGER_ALPHABET) for _ in range(TRIGGER_LENGTH - 1))


def manifest_image(
    image: Image, words: TrainingWords, trigger: str, resolution: int
) -> dict[str, Any]:
    """An image as a training freezes it: its bytes, its caption and where that came from, the
    caption it trains with, and the aspect-ratio bucket it trains at."""
    return {
        "id": image.id,
        "sha256": image.sha256,
        "displayKey": image.display_key,
        "imageCaption": image.caption,
        "captionSource": image.caption_source.value,
        "caption": words.caption(trigger, image.caption),
        "bucket": str(bucket_for(image.width, image.height, resolution)),
    }


def each_file_once(images: Iterable[Image]) -> list[Image]:
    """In upload order, each file (sha256) once: an exact duplicate trains as its first copy."""
    once: dict[str, Image] = {}
    for image in upload_order(images):
        once.setdefault(image.sha256, image)
    return list(once.values())


def default_sample_prompt(words: TrainingWords, trigger: str) -> str:
    """``a photo of {trigger} {class}``, empty parts tidied away as in captions."""
    return replace(words, template=DEFAULT_SAMPLE_PROMPT).caption(trigger, "")


def weights_key(training: Training) -> str:
    """The blob of the training's LoRA; 409 ``not_succeeded`` until it has one."""
    if training.status is not RunStatus.SUCCEEDED or training.artifact_key is None:
        raise Conflict("The training has no weights yet.", code="not_succeeded")
    return training.artifact_key


class TrainingService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        jobs: JobService,
        queue: JobQueue,
        blobs: BlobStore,
        catalog: BaseModelCatalog,
        dataset: DatasetService,
        clock: Clock,
        new_id: IdFactory,
        events: RunEvents,
        max_checkpoints: int | None = None,
    ) -> None:
        self._uow = uow
        self._jobs = jobs
        self._max_checkpoints = max_checkpoints
        self._queue = queue
        self._events = events
        self._blobs = blobs
        self._refs = BlobReferences(uow=uow, blobs=blobs)
        self._catalog = catalog
        self._dataset = dataset
        self._clock = clock
        self._new_id = new_id

    def start(
        self,
        who: Principal,
        model_id: str,
        *,
        strength: int,
        speed: TrainingSpeed,
        webhook_url: str | None = None,
        webhook_events: list[str] | None = None,
        overrides: Overrides | None = None,
        exclusive: bool = False,
        words: TrainingWords | None = None,
        require_ready_dataset: bool = False,
        sample_prompts: list[str] | None = None,
    ) -> Training:
        """Queue a training of the model's current training images and hand it to the job
        queue once committed. ``exclusive`` refuses while another training of the model is
        queued or running (Scenario: one at a time). ``words``: the trigger word (default: a
        new random one), class word and caption template every image's caption is made with.
        ``require_ready_dataset`` refuses a model whose dataset check is not ``ready``.
        ``sample_prompts`` (at most four) are rendered at every sample step after the default
        prompt (``a photo of {trigger} {class}``).
        ``webhook_events``: the lifecycle events its webhook announces (None: the default)."""
        if webhook_url is not None:
            check_webhook_url(webhook_url)
        webhook_events = chosen_events(webhook_events, TRAINING_EVENTS, webhook_url=webhook_url)
        words = (words or TrainingWords()).checked()
        prompts = checked_sample_prompts(sample_prompts)
        self._dataset.measure_missing(who, model_id)  # before the write lock: it takes a while
        with self._uow(write=True) as uow:
            model = uow.models.get(who.account_id, model_id, lock=True)
            if model is None:
                raise NotFound(f"No model {model_id}.")
            if exclusive and any(
                not t.status.terminal for t in uow.trainings.list_for_model(model_id)
            ):
                raise Conflict("The model is already training.", code="already_training")
            images = self._pinned_training_images(uow, model_id)
            base = self._base_model(model.base_model)
            dataset = self._checked_dataset(uow, model, images, required=require_ready_dataset)
            trigger = words.trigger or new_trigger_word()
            seed = secrets.randbelow(2**31)
            hyper = plan(base, strength=strength, speed=speed, seed=seed)
            if overrides is not None:
                hyper = tune(hyper, overrides)
            manifest: dict[str, Any] = {
                "baseModel": base.name,
                "triggerWord": trigger,
                "classWord": words.class_word,
                "captionTemplate": words.template,
                "hyperparameters": vars(hyper),
                "images": [
                    manifest_image(i, words, trigger, hyper.resolution)
                    for i in each_file_once(images)  # upload order
                ],
                "dataset": dataset,
                "sampling": sample_plan(
                    hyper,
                    prompts=[default_sample_prompt(words, trigger), *prompts],
                    max_checkpoints=self._max_checkpoints,
                ).as_manifest(),
            }
            training = Training(
                id=self._new_id(),
                account_id=who.account_id,
                model_id=model_id,
                status=RunStatus.QUEUED,
                strength=strength,
                speed=speed,
                trigger_word=trigger,
                manifest=manifest,
                created_at=self._clock.now(),
                webhook_url=webhook_url,
                webhook_events=webhook_events,
            )
            training.progress.total_steps = hyper.steps
            uow.trainings.add(training, pinned_blobs={i.display_key for i in images})
            self._jobs.enqueue(uow, JobKind.TRAINING, training.id)
            uow.commit()
        self._queue.submit(training.id)
        return training

    def _pinned_training_images(self, uow: UnitOfWork, model_id: str) -> list[Image]:
        """The model's training images whose bytes this transaction now holds (blob_refs):
        an image deleted since it was listed, with its bytes already gone, is left out."""
        images, _ = uow.images.list_for_model(
            model_id, kinds=[ImageKind.TRAINING], offset=0, limit=MAX_TRAINING_IMAGES
        )
        gone = self._refs.pin(uow, {i.display_key for i in images})
        images = [i for i in images if i.display_key not in gone]
        if not images:
            raise Conflict("The model has no training images yet.", code="no_training_images")
        return images

    def _checked_dataset(
        self, uow: UnitOfWork, model: Model, images: list[Image], *, required: bool
    ) -> dict[str, Any]:
        """The dataset check's counts over ``images``, to freeze into the manifest; with
        ``required``, a check that is not ``ready`` refuses the training."""
        checked = self._dataset.check(uow, model, images)
        report = checked.report
        if required and not report.ready:
            problems = ", ".join(f"{n} {code}" for code, n in report.issue_counts.items())
            raise Conflict(
                f"The dataset is not ready: {report.usable} of {report.count} images are "
                f"usable, {report.min_images} are needed"
                + (f" (issues: {problems})." if problems else "."),
                code="dataset_not_ready",
            )
        return checked.frozen()

    def _base_model(self, name: str) -> BaseModel:
        return base_model_named(self._catalog, name)

    def get(self, who: Principal, model_id: str, training_id: str) -> Training:
        with self._uow() as uow:
            return self._owned(uow, who, model_id, training_id)

    def find(self, who: Principal, training_id: str) -> Training:
        """A training of the account by id alone (dialects whose job ids name no model)."""
        with self._uow() as uow:
            training = uow.trainings.get(training_id, account_id=who.account_id)
            if training is None or uow.models.get(who.account_id, training.model_id) is None:
                raise NotFound(f"No training {training_id}.")
            return training

    def list(self, who: Principal, model_id: str) -> list[Training]:
        with self._uow() as uow:
            if uow.models.get(who.account_id, model_id) is None:
                raise NotFound(f"No model {model_id}.")
            return uow.trainings.list_for_model(model_id)

    def cancel(self, who: Principal, model_id: str, training_id: str) -> Training:
        """Queued: canceled at once. Processing: the worker stops within one step."""
        with self._uow(write=True) as uow:
            training = self._owned(uow, who, model_id, training_id)
            training.request_cancel(self._clock.now())
            uow.trainings.update(training)
            if training.status is RunStatus.CANCELED:  # it was queued: no worker announces it
                self._events.emit(uow, training, "training.canceled")
            uow.commit()
        return training

    def delete(self, who: Principal, model_id: str, training_id: str) -> None:
        """Soft delete: hidden from answers, history kept; a running training goes on. Its
        samples, sample sheet and checkpoints go, with their bytes unless shared."""
        with self._uow(write=True) as uow:
            training = self._owned(uow, who, model_id, training_id)
            # The model's row orders this against a worker storing samples (``live``).
            uow.models.get(who.account_id, model_id, lock=True)
            keys = purge(uow, [training.id])
            training.deleted_at = self._clock.now()
            uow.trainings.update(training)
            uow.commit()
        self._refs.release(keys)

    def open_weights(self, who: Principal, model_id: str, training_id: str) -> BinaryIO:
        """The stored LoRA file, as the trainer wrote it."""
        return self._blobs.open(weights_key(self.get(who, model_id, training_id)))

    @staticmethod
    def _owned(uow: UnitOfWork, who: Principal, model_id: str, training_id: str) -> Training:
        training = uow.trainings.get(training_id, account_id=who.account_id)
        if training is None or training.model_id != model_id:
            raise NotFound(f"No training {training_id}.")
        if uow.models.get(who.account_id, model_id) is None:
            raise NotFound(f"No model {model_id}.")
        return training
