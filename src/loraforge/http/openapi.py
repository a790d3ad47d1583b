"""OpenAPI documents that state the limits the server enforces.

Most bounds are static and sit in the schemas (``Field``/``Query`` constraints). The largest
``pageSize`` is a setting (``LORAFORGE_MAX_PAGE_SIZE``), so the document of an app (the native
one and each dialect sub-app) is patched with the running container's value when it is served.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def publish_limits(app: FastAPI) -> None:
    """Make ``app.openapi()`` state ``pageSize``'s maximum from ``app.state.container``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI caches the document; the patch below is idempotent
        container = getattr(app.state, "container", None)
        if container is not None:
            _set_page_size_maximum(schema, container.limits.max_page_size)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _set_page_size_maximum(schema: dict[str, Any], maximum: int) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "pageSize" and "maximum" in parameter["schema"]:
                    parameter["schema"]["maximum"] = maximum
