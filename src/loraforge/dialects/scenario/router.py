"""Scenario models, their training and its job: ``/models``, ``/models/{id}/train``, ``/jobs``.

A Scenario model is a core Model: ``name`` is its display name, ``type`` its custom model type
(echoed as given) and every other field is kept in ``Model.attributes["scenario"]``. Each LoRA
type trains on the default base model unless ``LORAFORGE_SCENARIO_BASE_MODELS`` maps it to
another. ``status`` and ``trainingProgress`` follow the model's latest training; a Scenario job is
that loraforge training (``job_<training id>``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from loraforge.bootstrap import Container
from loraforge.dialects.scenario import schemas as s
from loraforge.dialects.scenario import translate as t
from loraforge.dialects.scenario.deps import ScenarioPrincipal
from loraforge.domain.entities import Principal
from loraforge.domain.errors import BadRequest, Conflict, InvalidInput
from loraforge.domain.work import TrainingSpeed
from loraforge.http.deps import ContainerDep, LinksDep
from loraforge.http.links import ImageLinks
from loraforge.services.training_plan import Overrides

router = APIRouter()

DEFAULT_PAGE_SIZE = 10
# Scenario has no strength/speed knobs: trainings use the native API's defaults.
STRENGTH, SPEED = 5, TrainingSpeed.FAST


def _lora_type(type_: str) -> str:
    if type_ not in s.LORA_TYPES:
        raise InvalidInput(
            f"type {type_!r} is not a LoRA type; loraforge trains LoRA models (…-lora).",
            field="type",
        )
    return type_


def _attributes(body: s.Wire, fields: set[str]) -> dict[str, Any]:
    return {t.NAMESPACE: body.model_dump(mode="json", include=fields, exclude_unset=True)}


def _model(c: Container, who: Principal, model_id: str, links: ImageLinks) -> s.ModelEnvelope:
    state = c.models.describe(who, model_id, detail=True)
    return t.model_envelope(state, links=links, now=c.clock.now())


@router.post("/models")
def create_model(
    body: s.ModelCreate, who: ScenarioPrincipal, c: ContainerDep, links: LinksDep
) -> s.ModelEnvelope:
    type_ = _lora_type(body.type or s.DEFAULT_TYPE)
    extra = {"shortDescription", "classSlug", "baseModelId", "collectionIds", "concepts"}

    model = c.models.create(
        who,
        display_name=body.name or t.UNTITLED,
        custom_model_type=type_,
        base_model=c.settings.scenario_base_models.get(type_),
        attributes=_attributes(body, extra),
    )
    return _model(c, who, model.id, links)


@router.get("/models")
def list_models(
    who: ScenarioPrincipal,
    c: ContainerDep,
    links: LinksDep,
    page_size: Annotated[int, Query(alias="pageSize", ge=1)] = DEFAULT_PAGE_SIZE,
    token: Annotated[str | None, Query(alias="paginationToken", max_length=64)] = None,
    status: Literal["new", "training", "trained", "failed", "deleted"] | None = None,
    type_: Annotated[s.ModelType | None, Query(alias="type")] = None,
    types: Annotated[str | None, Query(max_length=2000)] = None,
    privacy: Literal["private", "public"] | None = None,
    collection_id: Annotated[str | None, Query(alias="collectionId", max_length=100)] = None,
) -> s.ModelPage:
    """Newest first; ``status``, ``type``, ``types``, ``privacy`` and ``collectionId`` filter
    (every model is private; deleted ones are never listed); other filters and sort options
    are ignored. The cursor is an offset into the account's models: a model created while a
    client pages through shifts it by one, so that client sees one model twice, never misses
    one. With a filter, a page reads on until it is full or the models run out."""
    size = min(page_size, c.limits.max_page_size)
    wanted_types = {type_} if type_ else set(types.split(",")) if types else None

    def keep(m: s.Model) -> bool:
        return (
            (status is None or m.status == status)
            and (wanted_types is None or m.type in wanted_types)
            and (collection_id is None or collection_id in m.collectionIds)
        )

    offset = t.decode_cursor(token) if token else 0
    if privacy == "public" or status == "deleted":
        return t.model_page([], next_offset=None)
    found: list[s.Model] = []
    total = offset + 1  # unknown until the first read
    while len(found) < size and offset < total:
        states, total = c.models.describe_range(who, offset=offset, limit=size)
        if not states:
            break
        now = c.clock.now()
        for state in states:
            offset += 1
            model = t.model(state, links=links, now=now)
            if keep(model):
                found.append(model)
                if len(found) == size:
                    break
    return t.model_page(found, next_offset=offset if offset < total else None)


@router.get("/models/{modelId}")
def get_model(
    modelId: str, who: ScenarioPrincipal, c: ContainerDep, links: LinksDep
) -> s.ModelEnvelope:
    model_id = t.core_id(t.MODEL, modelId)
    return _model(c, who, model_id, links)


@router.put("/models/{modelId}")
def update_model(
    modelId: str, body: s.ModelUpdate, who: ScenarioPrincipal, c: ContainerDep, links: LinksDep
) -> s.ModelEnvelope:
    model_id = t.core_id(t.MODEL, modelId)
    type_ = None if body.type is None else _lora_type(body.type)
    extra = {
        "shortDescription",
        "classSlug",
        "concepts",
        "epoch",
        "promptEmbedding",
        "negativePromptEmbedding",
        "parameters",
    }
    attributes = _attributes(body, extra)

    if body.thumbnail is not None:
        thumbnail = c.images.get(who, t.core_id(t.ASSET, body.thumbnail))
        attributes[t.NAMESPACE]["thumbnail"] = thumbnail.id
    c.models.update(
        who,
        model_id,
        display_name=body.name,
        custom_model_type=type_,
        base_model=None
        if type_ is None
        else c.settings.scenario_base_models.get(type_, c.catalog.default),
        attributes=attributes,
    )
    return _model(c, who, model_id, links)


@router.delete("/models/{modelId}")
def delete_model(modelId: str, who: ScenarioPrincipal, c: ContainerDep) -> dict[str, Any]:
    c.models.delete(who, t.core_id(t.MODEL, modelId))
    return {}


# --- training ---------------------------------------------------------------------------


@router.put("/models/{modelId}/train")
def train(
    modelId: str,
    who: ScenarioPrincipal,
    c: ContainerDep,
    links: LinksDep,
    body: s.TrainTrigger | None = None,
    dry_run: Annotated[str | None, Query(alias="dryRun")] = None,
) -> s.TrainEnvelope:
    """Starts a loraforge training of the model's training images. Of ``parameters``,
    ``maxTrainSteps``, ``learningRate``, ``rank`` and ``seed`` are applied, and
    ``conceptPrompt`` and ``classPrompt`` make the captions (``translate.training_words``); all
    are recorded on the model. One training at a time per model (409 while one is queued or
    running)."""
    if dry_run is not None:
        raise BadRequest(
            "dryRun is not supported: loraforge has no creative-unit costs to estimate.",
            code="dry_run_unsupported",
        )
    model_id = t.core_id(t.MODEL, modelId)
    params = body.parameters if body else None
    overrides = (
        Overrides(
            steps=params.maxTrainSteps,
            learning_rate=params.learningRate,
            rank=params.rank,
            seed=params.seed,
        )
        if params
        else None
    )

    training = c.trainings.start(
        who,
        model_id,
        strength=STRENGTH,
        speed=SPEED,
        overrides=overrides,
        exclusive=True,
        words=t.training_words(params),
    )
    if params is not None:
        recorded = {"parameters": params.model_dump(mode="json", exclude_unset=True)}
        c.models.update(who, model_id, attributes={t.NAMESPACE: recorded})
    state = c.models.describe(who, model_id, detail=True)
    return t.train_envelope(training, state, links=links, now=c.clock.now())


@router.post("/models/{modelId}/train/action")
def train_action(
    modelId: str, body: s.TrainAction, who: ScenarioPrincipal, c: ContainerDep, links: LinksDep
) -> s.ModelEnvelope:
    """``{"action": "cancel"}``: cancels the model's queued or running training."""
    model_id = t.core_id(t.MODEL, modelId)

    training = c.models.describe(who, model_id).latest_training
    if training is None:
        raise Conflict("The model has no training to cancel.", code="not_training")
    c.trainings.cancel(who, model_id, training.id)
    return _model(c, who, model_id, links)


@router.get("/jobs/{jobId}")
def get_job(jobId: str, who: ScenarioPrincipal, c: ContainerDep) -> s.JobEnvelope:
    training_id = t.core_id(t.JOB, jobId)

    training = c.trainings.find(who, training_id)
    model = c.models.get(who, training.model_id)
    return t.job_envelope(training, model.custom_model_type)
