"""How a wire format other than the native API declares itself, and the sub-app it is served as.

A dialect (``dialects/<vendor>/``) exports a ``Dialect``: where it is mounted and the factory of
its app. ``loraforge.app`` mounts the list; nothing else needs to know a dialect exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp

from loraforge.http.openapi import publish_limits


@dataclass(frozen=True)
class Dialect:
    """A vendor wire format: ``create_app(parent)`` builds the app mounted at ``prefix``."""

    name: str
    prefix: str
    create_app: Callable[[FastAPI], ASGIApp]


def sub_app(parent: FastAPI, *, title: str) -> FastAPI:
    """A FastAPI app for one dialect, sharing ``parent.state``; no docs routes of its own.

    Sharing the state makes the kit's dependencies (``http.deps``: the container, the
    principal) work unchanged inside it; a mounted app's own lifespan never runs."""
    app = FastAPI(title=title, openapi_url=None, docs_url=None, redoc_url=None)
    app.state = parent.state
    publish_limits(app)  # ``app.openapi()``: not served, but built for tests and fuzzers
    return app
