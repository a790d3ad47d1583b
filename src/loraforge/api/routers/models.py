"""/v1/models: seed 003 custom models."""

from __future__ import annotations

from fastapi import APIRouter, Response

from loraforge.api.errors import documented
from loraforge.api.presenters import model_page, model_read
from loraforge.api.schemas.models import ModelCreate, ModelPage, ModelRead, ModelRename
from loraforge.http.deps import ContainerDep, PrincipalDep
from loraforge.http.paging import PageNum, PageSize
from loraforge.services.paging import page_request

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.post("", responses=documented(400, 413, 422), status_code=201, response_model=ModelRead)
def create_model(body: ModelCreate, who: PrincipalDep, c: ContainerDep) -> ModelRead:
    model = c.models.create(
        who,
        display_name=body.displayName,
        custom_model_type=body.customModelType,
        base_model=body.baseModel,
    )
    return model_read(model)


@router.get("", responses=documented(422), response_model=ModelPage)
def list_models(
    who: PrincipalDep, c: ContainerDep, page_num: PageNum = 1, page_size: PageSize = 20
) -> ModelPage:
    page = page_request(page_num, page_size, max_page_size=c.limits.max_page_size)
    result = c.models.list(who, page)
    return model_page(result)


@router.get("/{modelId}", responses=documented(404), response_model=ModelRead)
def get_model(modelId: str, who: PrincipalDep, c: ContainerDep) -> ModelRead:
    return model_read(c.models.get(who, modelId))


@router.put("/{modelId}", responses=documented(400, 404, 413, 422), response_model=ModelRead)
def rename_model(modelId: str, body: ModelRename, who: PrincipalDep, c: ContainerDep) -> ModelRead:
    model = c.models.rename(who, modelId, display_name=body.updatedDisplayName)
    return model_read(model)


@router.delete("/{modelId}", responses=documented(404), status_code=204, response_class=Response)
def delete_model(modelId: str, who: PrincipalDep, c: ContainerDep) -> Response:
    c.models.delete(who, modelId)
    return Response(status_code=204)
