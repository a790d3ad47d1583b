"""The Scenario sub-app: auth, error shape and retry advice around the routers.

Auth: see ``deps.py``.

Errors: ``{"apiError": "<code>", "message": "..."}`` with the native status for each domain
error (``http.errors.status_for``): 400 bad request or a pair naming a non-training image, 401,
404 (also another account's resource, and an id without its ``model_``/``asset_``/``job_``
prefix), 409 conflict (already training, nothing to cancel, training image limit), 413, 415,
422 (schema, values, unusable images), 429 with Retry-After, 503, 500.

Retries: the SDK retries 408, 409, 429 and every 5xx for every method, POST and PUT included,
with no idempotency key. Every error answer here carries ``x-should-retry: false`` (which the
SDK obeys), except 429 and 503, which carry ``true``: waiting can only help there, while a
replayed 409 or 500 would at best fail again and at worst repeat a side effect.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loraforge.dialects.scenario.assets import router as assets
from loraforge.dialects.scenario.router import router as models
from loraforge.dialects.scenario.training_images import router as training_images
from loraforge.http.dialect import sub_app
from loraforge.http.errors import install_error_handlers

RETRY_WORTHY = frozenset({408, 429, 503})


def create_app(parent: FastAPI) -> ASGIApp:
    """The app to mount at ``/compat/scenario/v1`` (the SDK's ``base_url``)."""
    app = sub_app(parent, title="loraforge: Scenario-compatible training images")
    install_error_handlers(app, error_body)
    for router in (models, training_images, assets):
        app.include_router(router)
    return RetryAdvice(app)


def error_body(status: int, code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"apiError": code, "message": message}


class RetryAdvice:
    """Adds ``x-should-retry`` to every error answer (outermost, so 500s get it too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def advise(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                retry = b"true" if message["status"] in RETRY_WORTHY else b"false"
                headers = [h for h in message.get("headers", []) if h[0] != b"x-should-retry"]
                message = {**message, "headers": [*headers, (b"x-should-retry", retry)]}
            await send(message)

        await self.app(scope, receive, advise)
