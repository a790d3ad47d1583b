"""Core entities to Scenario wire objects, and Scenario ids, cursors and types to core values.

Ids carry Scenario's prefixes over the core ids: ``model_<model id>``, ``asset_<image id>`` (an
uploaded asset and a training image alike) and ``job_<training id>``. Every field of a
Scenario answer is written here, by pure functions: the request's signed links come in as an
``ImageLinks``, the time as a value.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any, cast

from loraforge.dialects.scenario import schemas as s
from loraforge.domain.captions import TRIGGER_WORD, CaptionSource, TrainingWords, WordFields
from loraforge.domain.entities import Image, ImageKind, TrainingPair
from loraforge.domain.errors import BadRequest, NotFound
from loraforge.domain.work import RunStatus, Training
from loraforge.http.links import ImageLinks
from loraforge.services.models import ModelState
from loraforge.services.paging import MAX_OFFSET

MODEL, ASSET, JOB = "model_", "asset_", "job_"
NAMESPACE = "scenario"  # the key of this dialect's fields in Model.attributes
UNTITLED = "Untitled model"

MODEL_STATUS: dict[RunStatus, s.ModelStatus] = {
    RunStatus.QUEUED: "training",
    RunStatus.PROCESSING: "training",
    RunStatus.SUCCEEDED: "trained",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELED: "training-canceled",
}
JOB_STATUS: dict[RunStatus, s.JobStatus] = {
    RunStatus.QUEUED: "queued",
    RunStatus.PROCESSING: "in-progress",
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "failure",
    RunStatus.CANCELED: "canceled",
}
STAGE: dict[RunStatus, s.Stage] = {
    RunStatus.QUEUED: "queued-for-train",
    RunStatus.PROCESSING: "running-train",
}


# --- ids, times, cursors ----------------------------------------------------------------


def core_id(prefix: str, wire_id: str) -> str:
    """The core id inside a Scenario id; an id without the prefix names nothing (404)."""
    if not wire_id.startswith(prefix) or len(wire_id) == len(prefix):
        raise NotFound(f"No {prefix.rstrip('_')} {wire_id}.")
    return wire_id[len(prefix) :]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(moment: datetime) -> float:
    return float(round(moment.timestamp() * 1000))


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, value = text.partition(":")
        offset = int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        offset = -1
        kind = ""
    if kind != "offset" or not 0 <= offset <= MAX_OFFSET or len(token) > 64:
        raise BadRequest("paginationToken is not a token this server issued.")
    return offset


# --- types --------------------------------------------------------------


def model_type(custom_model_type: str | None) -> s.ModelType:
    """The Scenario type a model was given; models made elsewhere show as ``custom``."""
    if custom_model_type in s.MODEL_TYPES:
        return cast(s.ModelType, custom_model_type)
    return "custom"


def job_type(type_: str) -> s.JobType:
    if type_.startswith("flux"):
        return "flux-model-training"
    if type_.startswith(("qwen", "zimage")):
        return "musubi-model-training"
    return "model-training"


# --- objects ----------------------------------------------------------------------------


def training_words(params: s.Parameters | None) -> TrainingWords | None:
    """``conceptPrompt`` and ``classPrompt`` as a training's words. A one-word concept prompt
    (``sks``) is the trigger word; a longer one (``a daiton dog``, Scenario's example) starts
    every caption as it is, in place of ``a photo of {trigger} {class}``. ``classPrompt`` is
    the class word."""
    concept = (params.conceptPrompt or "").strip() if params else ""
    class_word = (params.classPrompt or "").strip() if params else ""
    if not concept and not class_word:
        return None
    words = TrainingWords(class_word=class_word)
    if TRIGGER_WORD.fullmatch(concept):
        words = TrainingWords(trigger=concept, class_word=class_word)
    elif concept:
        literal = concept.replace("{", "{{").replace("}", "}}")
        words = TrainingWords(class_word=class_word, template=literal + ", {caption}")
    return words.checked(SCENARIO_WORDS)


SCENARIO_WORDS = WordFields(
    trigger="parameters.conceptPrompt",
    class_word="parameters.classPrompt",
    template="parameters.conceptPrompt",
)


def _caption_by(image: Image, source: CaptionSource) -> str:
    return image.caption if image.caption_source is source else ""


def training_image(image: Image, links: ImageLinks) -> s.TrainingImage:
    return s.TrainingImage(
        id=ASSET + image.id,
        automaticCaptioning=_caption_by(image, CaptionSource.AUTO),
        createdAt=iso(image.created_at),
        description=_caption_by(image, CaptionSource.USER),
        downloadUrl=links.content(image.id),
        name=image.name or "",
    )


def pair(p: TrainingPair) -> s.Pair:
    return s.Pair(
        sourceId=ASSET + p.source_image_id,
        targetId=ASSET + p.target_image_id,
        instruction=p.instruction,
    )


def model(state: ModelState, *, links: ImageLinks, now: datetime) -> s.Model:
    m, training = state.model, state.latest_training
    extra: dict[str, Any] = m.attributes.get(NAMESPACE) or {}
    thumbnail = extra.get("thumbnail")
    images, pairs = state.training_images, state.pairs
    return s.Model(
        id=MODEL + m.id,
        capabilities=["txt2img"],
        collectionIds=extra.get("collectionIds") or [],
        createdAt=iso(m.created_at),
        custom=True,
        exampleAssetIds=[],
        privacy="private",
        source="scenario",
        status=MODEL_STATUS[training.status] if training else "new",
        tags=[],
        trainingImagesNumber=state.training_image_count,
        type=model_type(m.custom_model_type),
        updatedAt=iso(m.updated_at),
        name=m.display_name,
        shortDescription=extra.get("shortDescription"),
        ownerId=m.account_id,
        authorId=m.account_id,
        jobId=JOB + training.id if training else None,
        epoch=extra.get("epoch"),
        concepts=[s.ConceptOut.model_validate(c) for c in extra.get("concepts") or []] or None,
        parameters=s.Parameters.model_validate(extra["parameters"])
        if extra.get("parameters")
        else None,
        thumbnail=s.Thumbnail(assetId=ASSET + thumbnail, url=links.content(thumbnail))
        if thumbnail
        else None,
        trainingImages=None if images is None else [training_image(i, links) for i in images],
        trainingImagePairs=None if pairs is None else [pair(p) for p in pairs],
        trainingProgress=_progress(training, now) if training else None,
        trainingStats=_stats(training) if training else None,
    )


def _fraction(training: Training) -> float:
    if training.status is RunStatus.SUCCEEDED:
        return 1.0
    total = training.progress.total_steps
    return min(1.0, training.progress.step / total) if total else 0.0


def _progress(training: Training, now: datetime) -> s.TrainingProgress | None:
    stage = STAGE.get(training.status)
    if stage is None:
        return None
    eta = training.progress.eta_seconds
    return s.TrainingProgress(
        stage=stage,
        updatedAt=epoch_ms(now),
        progress=_fraction(training),
        remainingTimeMs=None if eta is None else eta * 1000,
        startedAt=epoch_ms(training.started_at) if training.started_at else None,
    )


def _stats(training: Training) -> s.TrainingStats | None:
    started, ended = training.started_at, training.finished_at
    if started is None:
        return None
    return s.TrainingStats(
        startedAt=iso(started),
        endedAt=iso(ended) if ended else None,
        queueDuration=(started - training.created_at).total_seconds(),
        trainDuration=(ended - started).total_seconds() if ended else None,
    )


def job(training: Training, type_: str) -> s.Job:
    history = [s.StatusChange(date=iso(training.created_at), status="queued")]
    if training.started_at:
        history.append(s.StatusChange(date=iso(training.started_at), status="in-progress"))
    if training.finished_at and training.status.terminal:
        history.append(
            s.StatusChange(date=iso(training.finished_at), status=JOB_STATUS[training.status])
        )
    manifest = training.manifest
    succeeded = training.status is RunStatus.SUCCEEDED
    return s.Job(
        jobId=JOB + training.id,
        jobType=job_type(type_),
        createdAt=iso(training.created_at),
        updatedAt=history[-1].date,
        metadata=s.JobMetadata(
            input={
                "baseModel": manifest.get("baseModel"),
                "triggerWord": training.trigger_word,
                "hyperparameters": manifest.get("hyperparameters"),
            },
            output={"triggerWord": training.trigger_word} if succeeded else None,
            error=training.error,
            assetIds=[ASSET + item["id"] for item in manifest.get("images", [])],
            outputModelId=MODEL + training.model_id,
        ),
        progress=_fraction(training),
        status=JOB_STATUS[training.status],
        statusHistory=history,
        authorId=training.account_id,
        ownerId=training.account_id,
    )


def asset(image: Image, links: ImageLinks) -> s.Asset:
    source: s.AssetSource = "inference-txt2img" if image.kind is ImageKind.OUTPUT else "uploaded"
    return s.Asset(
        id=ASSET + image.id,
        authorId=image.account_id,
        collectionIds=[],
        createdAt=iso(image.created_at),
        editCapabilities=[],
        kind="image",
        metadata=s.AssetMetadata(
            kind="image", type=source, name=image.name, width=image.width, height=image.height
        ),
        mimeType=image.format.mime,
        ownerId=image.account_id,
        privacy="private",
        properties=s.AssetProperties(
            size=image.size_bytes,
            width=image.width,
            height=image.height,
            format=image.format.value,
        ),
        source=source,
        status="success",
        tags=[],
        updatedAt=iso(image.last_used_at),
        url=links.content(image.id),
        automaticCaptioning=_caption_by(image, CaptionSource.AUTO) or None,
        description=_caption_by(image, CaptionSource.USER) or None,
    )


# --- answers ----------------------------------------------------------------------------


def model_envelope(state: ModelState, *, links: ImageLinks, now: datetime) -> s.ModelEnvelope:
    return s.ModelEnvelope(model=model(state, links=links, now=now))


def model_page(models: list[s.Model], *, next_offset: int | None) -> s.ModelPage:
    """``next_offset``: where the next page starts, None after the last page."""
    token = None if next_offset is None else encode_cursor(next_offset)
    return s.ModelPage(models=models, nextPaginationToken=token)


def train_envelope(
    training: Training, state: ModelState, *, links: ImageLinks, now: datetime
) -> s.TrainEnvelope:
    trained = model(state, links=links, now=now)
    return s.TrainEnvelope(job=job(training, trained.type), model=trained)


def job_envelope(training: Training, custom_model_type: str | None) -> s.JobEnvelope:
    return s.JobEnvelope(job=job(training, model_type(custom_model_type)))


def asset_envelope(image: Image, links: ImageLinks) -> s.AssetEnvelope:
    return s.AssetEnvelope(asset=asset(image, links))


def training_image_envelope(
    images: list[Image], links: ImageLinks, *, batch: bool = False
) -> s.TrainingImageEnvelope:
    """The first image; every one too (``trainingImages``) for a ``batch`` (``assetIds``)."""
    out = [training_image(image, links) for image in images]
    return s.TrainingImageEnvelope(trainingImage=out[0], trainingImages=out if batch else None)


def pairs_envelope(pairs: list[TrainingPair]) -> s.PairsEnvelope:
    return s.PairsEnvelope(count=len(pairs), pairs=[pair(p) for p in pairs])
