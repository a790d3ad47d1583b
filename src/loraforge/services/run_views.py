"""Trainings and predictions as the native API presents them, as plain dicts: the one shape that
the API's answers (``api/presenters.py`` builds its schemas from it) and the lifecycle webhooks
(``services/run_events.py``) both carry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from loraforge.domain.work import Prediction, Progress, Run, Training


def progress_view(progress: Progress) -> dict[str, Any]:
    return {
        "step": progress.step,
        "totalSteps": progress.total_steps,
        "loss": progress.loss,
        "etaSeconds": progress.eta_seconds,
    }


def run_view(run: Run) -> dict[str, Any]:
    """The fields every run (training, prediction, caption run) shows the same way."""
    return {
        "id": run.id,
        "status": run.status.value,
        "progress": progress_view(run.progress),
        "createdAt": run.created_at,
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
        "error": run.error,
    }


def training_view(training: Training) -> dict[str, Any]:
    return run_view(training) | {
        "modelId": training.model_id,
        "triggerWord": training.trigger_word,
        "trainingStrength": training.strength,
        "trainingSpeed": training.speed.value,
        "manifest": training.manifest,
        "erasedAt": training.erased_at,
        "webhookEvents": training.webhook_events,
    }


def prediction_view(p: Prediction, link: Callable[[str], str]) -> dict[str, Any]:
    """``link``: an output image's signed content URL, by image id."""
    return run_view(p) | {
        "outputImages": [link(i) for i in p.output_image_ids],
        "outputImageIds": p.output_image_ids,
        "seed": p.seed,
        "prompt": p.prompt,
        "scaleConfigs": {
            s.key: {
                "scale": s.scale,
                "modelId": s.model_id,
                "trainingId": s.training_id,
                **({"checkpointStep": s.checkpoint_step} if s.checkpoint_step else {}),
            }
            for s in p.scale_configs
        },
        "image_size": {"width": p.width, "height": p.height},
        "num_images": p.num_images,
        "output_format": p.output_format,
        "guidance_scale": p.guidance_scale,
        "num_inference_steps": p.num_inference_steps,
        "negative_prompt": p.negative_prompt,
        "scheduler": p.scheduler,
        "init_image": p.init_image and p.init_image.source,
        "strength": p.strength if p.init_image else None,
        "mask_image": p.mask_image and p.mask_image.source,
        "webhookEvents": p.webhook_events,
    }


def json_ready(view: dict[str, Any]) -> dict[str, Any]:
    """The view with its times written as the API's JSON writes them (ISO 8601, ``Z``)."""
    return {key: _json_value(value) for key, value in view.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, dict):
        return json_ready(value)
    return value
