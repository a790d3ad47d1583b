"""Scenario training images: ``/models/{modelId}/training-images``.

A training image is a core training Image of the model (origin ``scenario``), the same one the
native API lists; its id is ``asset_<image id>``. It comes from a data URL (``data`` + ``name``),
or is a copy of an uploaded asset (``assetId``, or ``assetIds`` for up to 10 at once, all or
nothing). ``automaticCaptioning`` is the core caption when the configured captioning model wrote
it (a background job, after the answer), ``description`` when the client wrote it (through the
native API: the SDK has no field for it).
"""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Body

from loraforge.bootstrap import Container
from loraforge.dialects.scenario import schemas as s
from loraforge.dialects.scenario import translate as t
from loraforge.dialects.scenario.deps import ScenarioPrincipal
from loraforge.domain.entities import ALL_FORMATS, ImageKind, TrainingPair
from loraforge.domain.errors import BadRequest
from loraforge.http.deps import ContainerDep, LinksDep
from loraforge.services.images import Upload
from loraforge.services.inline_images import decode_inline

router = APIRouter(prefix="/models/{modelId}/training-images")

TRAINING = ImageKind.TRAINING
ORIGIN = "scenario"


def _upload(c: Container, body: s.TrainingImageAdd) -> Upload:
    assert body.data is not None
    data = decode_inline(body.data, max_bytes=c.limits.max_data_bytes)
    return Upload(stream=io.BytesIO(data), name=body.name)


def _one_form(body: s.TrainingImageAdd) -> None:
    if body.assetIds is not None and (body.assetId is not None or body.data is not None):
        raise BadRequest("assetIds cannot be combined with assetId or data.")
    if body.assetIds is None and body.assetId is None and body.data is None:
        raise BadRequest("Send data (a data URL) with name, or assetId, or assetIds.")


@router.post("")
def add_training_image(
    modelId: str, body: s.TrainingImageAdd, who: ScenarioPrincipal, c: ContainerDep, links: LinksDep
) -> s.TrainingImageEnvelope:
    model_id = t.core_id(t.MODEL, modelId)
    _one_form(body)
    if body.assetIds is not None or body.assetId is not None:
        ids = body.assetIds if body.assetIds is not None else [body.assetId or ""]
        sources = [t.core_id(t.ASSET, i) for i in ids]
        images = c.training_images.copy_in(who, model_id, sources, origin=ORIGIN)
    else:
        upload = _upload(c, body)
        with upload.stream:
            image = c.images.ingest(
                who,
                upload,
                kind=TRAINING,
                model_id=model_id,
                allowed=ALL_FORMATS,
                origin=ORIGIN,
            )
        images = [image]
    return t.training_image_envelope(images, links, batch=body.assetIds is not None)


@router.put("/pairs")
def replace_pairs(
    modelId: str,
    body: Annotated[list[s.PairIn], Body(max_length=1000)],
    who: ScenarioPrincipal,
    c: ContainerDep,
) -> s.PairsEnvelope:
    """A bare JSON array of ``{"sourceId", "targetId", "instruction"}``; every id must be a
    training image of this model (400 otherwise). Replaces the model's pairs."""
    model_id = t.core_id(t.MODEL, modelId)
    pairs = [_pair(n, p) for n, p in enumerate(body)]
    stored = c.training_images.replace_pairs(who, model_id, pairs)
    return t.pairs_envelope(stored)


def _pair(n: int, wire: s.PairIn) -> TrainingPair:
    ids = []
    for name, value in (("sourceId", wire.sourceId), ("targetId", wire.targetId)):
        if not value or not value.startswith(t.ASSET):
            raise BadRequest(
                f"[{n}].{name} must be the id of a training image of this model.",
                field=f"{n}.{name}",
            )
        ids.append(value[len(t.ASSET) :])
    return TrainingPair(
        source_image_id=ids[0], target_image_id=ids[1], instruction=wire.instruction or ""
    )


@router.put("/{trainingImageId}")
def replace_training_image(
    modelId: str,
    trainingImageId: str,
    body: s.TrainingImageAdd,
    who: ScenarioPrincipal,
    c: ContainerDep,
    links: LinksDep,
) -> s.TrainingImageEnvelope:
    """New bytes for the training image (same id), from ``data`` or an asset's bytes."""
    model_id = t.core_id(t.MODEL, modelId)
    image_id = t.core_id(t.ASSET, trainingImageId)
    _one_form(body)
    if body.assetIds is not None:
        raise BadRequest("Replace takes one image: data or assetId, not assetIds.")
    if body.assetId is not None:
        source = c.images.get(who, t.core_id(t.ASSET, body.assetId))
        upload = Upload(stream=io.BytesIO(c.images.read_original(source)), name=source.name)
    else:
        upload = _upload(c, body)
    with upload.stream:
        image = c.images.replace(
            who, image_id, upload, allowed=ALL_FORMATS, model_id=model_id, kind=TRAINING
        )
    return t.training_image_envelope([image], links)


@router.delete("/{trainingImageId}")
def delete_training_image(
    modelId: str, trainingImageId: str, who: ScenarioPrincipal, c: ContainerDep
) -> dict[str, Any]:
    model_id = t.core_id(t.MODEL, modelId)
    image_id = t.core_id(t.ASSET, trainingImageId)
    c.images.delete(who, image_id, model_id=model_id, kind=TRAINING)
    return {}
