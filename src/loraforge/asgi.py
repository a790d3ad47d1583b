"""The one module-level app, for ``uvicorn loraforge.asgi:app`` (settings from the env)."""

from loraforge.app import create_app

app = create_app()
