"""Entities for the contract tests, and helpers that run steps in one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from loraforge.domain.captions import CaptionSource
from loraforge.domain.entities import Account, ApiKey, Image, ImageFormat, ImageKind, Model
from loraforge.domain.work import (
    CaptionRun,
    Job,
    JobKind,
    JobState,
    Prediction,
    Progress,
    RunStatus,
    ScaleConfig,
    Training,
    TrainingSpeed,
    WebhookDelivery,
)
from loraforge.ports import UnitOfWork, UnitOfWorkFactory
from tests.fakes import EPOCH

T = TypeVar("T")
ME, OTHER = "acct-me", "acct-other"


def at(seconds: float) -> datetime:
    """A moment ``seconds`` after the tests' epoch (microseconds survive every store)."""
    return EPOCH + timedelta(seconds=seconds)


def blob_key(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def write(uow: UnitOfWorkFactory, *steps: Callable[[UnitOfWork], object]) -> None:
    """Run ``steps`` in one write transaction and commit it."""
    with uow(write=True) as tx:
        for step in steps:
            step(tx)
        tx.commit()


def read(uow: UnitOfWorkFactory, step: Callable[[UnitOfWork], T]) -> T:
    """``step``'s answer in a fresh read transaction."""
    with uow() as tx:
        return step(tx)


def seed(uow: UnitOfWorkFactory, *, accounts: tuple[str, ...] = (ME, OTHER)) -> None:
    write(uow, *(lambda tx, a=a: tx.accounts.add(account(a)) for a in accounts))


def account(account_id: str) -> Account:
    return Account(id=account_id, name=f"name of {account_id}", created_at=at(0))


def api_key(key_id: str, account_id: str = ME, *, prefix: str = "lf_aaaa", t: float = 0) -> ApiKey:
    return ApiKey(id=key_id, account_id=account_id, name=key_id, prefix=prefix, created_at=at(t))


def model(model_id: str, account_id: str = ME, *, t: float = 0) -> Model:
    return Model(
        id=model_id,
        account_id=account_id,
        display_name=f"model {model_id}",
        custom_model_type="fashion",
        base_model="tiny",
        created_at=at(t),
        updated_at=at(t),
        attributes={"age": 30, "tags": ["a", "b"]},
    )


def image(
    image_id: str,
    model_id: str | None,
    *,
    account_id: str = ME,
    kind: ImageKind = ImageKind.TRAINING,
    t: float = 0,
    used: float | None = None,
    origin: str = "native",
    prediction_id: str | None = None,
) -> Image:
    return Image(
        id=image_id,
        account_id=account_id,
        model_id=model_id,
        kind=kind,
        format=ImageFormat.PNG,
        width=640,
        height=480,
        size_bytes=1234,
        sha256=blob_key(f"{image_id}:original"),
        name=f"{image_id}.png",
        original_key=blob_key(f"{image_id}:original"),
        display_key=blob_key(f"{image_id}:display"),
        display_mime="image/webp",
        thumbnail_key=blob_key(f"{image_id}:thumbnail"),
        thumbnail_mime="image/webp",
        created_at=at(t),
        last_used_at=at(t if used is None else used),
        caption="a caption",
        caption_source=CaptionSource.USER,
        description="a description",
        prediction_id=prediction_id,
        origin=origin,
    )


def training(training_id: str, model_id: str, *, account_id: str = ME, t: float = 0) -> Training:
    return Training(
        id=training_id,
        account_id=account_id,
        model_id=model_id,
        status=RunStatus.QUEUED,
        strength=5,
        speed=TrainingSpeed.FAST,
        trigger_word="ohwx",
        manifest={"images": [{"id": "img-1", "caption": "c"}], "hyper": {"steps": 100}},
        created_at=at(t),
        webhook_url="https://hooks.example/t",
    )


def caption_run(run_id: str, model_id: str, *, account_id: str = ME, t: float = 0) -> CaptionRun:
    return CaptionRun(
        id=run_id,
        account_id=account_id,
        model_id=model_id,
        status=RunStatus.QUEUED,
        overwrite=True,
        image_ids=["img-2", "img-1"],
        created_at=at(t),
        progress=Progress(step=0, total_steps=2),
    )


def prediction(
    prediction_id: str, model_ids: list[str], *, account_id: str = ME, t: float = 0
) -> Prediction:
    return Prediction(
        id=prediction_id,
        account_id=account_id,
        status=RunStatus.QUEUED,
        scale_configs=[
            ScaleConfig(key=f"k{n}", scale=0.5 + n, model_id=m, training_id=f"tr-{m}")
            for n, m in enumerate(model_ids)
        ],
        prompt="a photo of ohwx",
        seed=42,
        width=64,
        height=64,
        num_images=2,
        output_format="png",
        guidance_scale=7.5,
        num_inference_steps=20,
        created_at=at(t),
        progress=Progress(step=1, total_steps=20, loss=None, eta_seconds=3.5),
    )


def job(
    job_id: str,
    subject_id: str,
    *,
    state: JobState = JobState.QUEUED,
    t: float = 0,
    available: float | None = None,
    lease_until: float | None = None,
    token: str | None = None,
    kind: JobKind = JobKind.TRAINING,
) -> Job:
    return Job(
        id=job_id,
        kind=kind,
        subject_id=subject_id,
        state=state,
        attempts=0 if state is JobState.QUEUED else 1,
        max_attempts=3,
        created_at=at(t),
        available_at=at(t if available is None else available),
        lease_owner=None if token is None else "worker-a",
        lease_token=token,
        lease_expires_at=None if lease_until is None else at(lease_until),
    )


def delivery(
    delivery_id: str,
    account_id: str = ME,
    *,
    t: float = 0,
    due: float | None = None,
    run: tuple[str, int] | None = None,
) -> WebhookDelivery:
    return WebhookDelivery(
        id=delivery_id,
        account_id=account_id,
        url="https://hooks.example/d",
        event="training.succeeded",
        body='{"type":"training.succeeded"}',
        created_at=at(t),
        next_attempt_at=at(t if due is None else due),
        run_id=run[0] if run else None,
        sequence=run[1] if run else None,
    )
