"""The one module-level app, for ``uvicorn loraforge.asgi:app`` (settings from the env)."""

from loraforge.api.app import create_app

app = create_app()
