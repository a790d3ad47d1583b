"""/v1/base-models and /v1/webhooks/secret."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from loraforge.api.schemas.work import BaseModelRead, WebhookSecret
from loraforge.http.deps import ContainerDep, PrincipalDep

router = APIRouter(tags=["platform"])


@router.get("/v1/base-models", response_model=list[BaseModelRead])
async def list_base_models(_: PrincipalDep, c: ContainerDep) -> list[BaseModelRead]:
    return [
        BaseModelRead(
            name=m.name,
            family=m.family.value,
            resolution=m.resolution,
            default=m.name == c.catalog.default,
            description=m.description,
        )
        for m in c.catalog.list()
    ]


@router.post("/v1/webhooks/secret", status_code=201, response_model=WebhookSecret)
async def rotate_webhook_secret(who: PrincipalDep, c: ContainerDep) -> WebhookSecret:
    """A new secret for signing this account's webhooks, shown once; the old one stops."""
    secret = await run_in_threadpool(c.webhooks.rotate_secret, who.account_id)
    return WebhookSecret(secret=secret)
