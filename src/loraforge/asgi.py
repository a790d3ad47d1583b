"""The one module-level app, for ``uvicorn loraforge.asgi:app`` (settings from the env)."""

from loraforge.app import create_app
from loraforge.bootstrap import check_extras
from loraforge.extras import MissingExtra
from loraforge.settings import Settings

settings = Settings()
try:
    check_extras(settings)  # here, not in the lifespan: one line instead of a traceback
except MissingExtra as exc:
    raise SystemExit(f"error: {exc}") from None

app = create_app(settings)
