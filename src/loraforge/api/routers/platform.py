"""/v1/base-models and /v1/webhooks/secret."""

from __future__ import annotations

from fastapi import APIRouter

from loraforge.api.presenters import base_model_list, webhook_secret
from loraforge.api.schemas.work import BaseModelRead, WebhookSecret
from loraforge.http.deps import ContainerDep, PrincipalDep

router = APIRouter(tags=["platform"])


@router.get("/v1/base-models", response_model=list[BaseModelRead])
def list_base_models(_: PrincipalDep, c: ContainerDep) -> list[BaseModelRead]:
    return base_model_list(c.catalog.list(), default=c.catalog.default)


@router.post("/v1/webhooks/secret", status_code=201, response_model=WebhookSecret)
def rotate_webhook_secret(who: PrincipalDep, c: ContainerDep) -> WebhookSecret:
    """A new secret for signing this account's webhooks, shown once; the old one stops."""
    secret = c.webhooks.rotate_secret(who.account_id)
    return webhook_secret(secret)
