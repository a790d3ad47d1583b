"""Lifecycle webhooks of trainings and predictions: which events a run announces, what each
carries, and the order they go out in.

A run created without ``webhookEvents`` keeps the default: one webhook when it ends, in the
payload it always had (``RunKind.payload``). A run that names its events gets each of them, as
``{"type", "timestamp", "sequence", …event fields, "data": the run as the API presents it}``.
Every delivery of a run is numbered in the run's order and sent only after the earlier ones
(``WebhookService.enqueue`` with ``run_id``). Each event is written in the transaction that
makes it true (the status, the progress, the sample), so none is lost or announced early.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loraforge.domain.entities import ImageVariant
from loraforge.domain.events import SampleEvent
from loraforge.domain.work import Prediction, Run, Training
from loraforge.ports import UnitOfWork
from loraforge.services.links import LinkSigner
from loraforge.services.run_views import json_ready, prediction_view, run_view, training_view
from loraforge.services.webhooks import WebhookService


class RunEvents:
    def __init__(
        self, *, webhooks: WebhookService, links: LinkSigner, public_url: str | None
    ) -> None:
        self._webhooks = webhooks
        self._links = links
        self._base = (public_url or "").rstrip("/")  # relative links without a public URL

    @staticmethod
    def wanted(run: Run, event: str) -> bool:
        """Whether the run announces ``event`` (it named it in ``webhookEvents``)."""
        return bool(run.webhook_url) and event in (run.webhook_events or ())

    def emit(self, uow: UnitOfWork, run: Run, event: str, **fields: Any) -> None:
        """Queue ``event`` of ``run`` in the caller's transaction, if the run announces it."""
        if not self.wanted(run, event):
            return
        assert run.webhook_url is not None
        self._webhooks.enqueue(
            uow,
            account_id=run.account_id,
            url=run.webhook_url,
            event=event,
            data=json_ready(self.view(run)),
            run_id=run.id,
            extra=fields,
        )

    def ended(
        self, uow: UnitOfWork, run: Run, event: str, payload: Callable[[Any], dict[str, Any]]
    ) -> None:
        """The run ended with ``event`` (``training.succeeded``…): announced if it names it, or
        by default (no ``webhookEvents``) as it always was, with ``payload(run)`` as data."""
        if run.webhook_events is not None:
            self.emit(uow, run, event)
        elif run.webhook_url:
            self._webhooks.enqueue(
                uow,
                account_id=run.account_id,
                url=run.webhook_url,
                event=event,
                data=payload(run),
                run_id=run.id,
            )

    def progress(self, uow: UnitOfWork, training: Training) -> None:
        """``training.progress``: the share done, the step, the loss and the time left."""
        p = training.progress
        self.emit(
            uow,
            training,
            "training.progress",
            progress=round(p.step / p.total_steps, 4) if p.total_steps else 0.0,
            step=p.step,
            totalSteps=p.total_steps,
            loss=p.loss,
            etaSeconds=p.eta_seconds,
        )

    def sample(self, uow: UnitOfWork, training: Training, sample: SampleEvent) -> None:
        """``training.sample``: a sample image was rendered and stored (call it in the
        transaction that stores it)."""
        self.emit(
            uow,
            training,
            "training.sample",
            sample={
                "step": sample.step,
                "prompt": sample.prompt,
                "seed": sample.seed,
                "imageId": sample.image_id,
                "image": self._link(sample.image_id),
            },
        )

    def view(self, run: Run) -> dict[str, Any]:
        if isinstance(run, Training):
            return training_view(run)
        if isinstance(run, Prediction):
            return prediction_view(run, self._link)
        return run_view(run)

    def _link(self, image_id: str) -> str:
        return self._links.url(self._base, image_id, ImageVariant.ORIGINAL)
