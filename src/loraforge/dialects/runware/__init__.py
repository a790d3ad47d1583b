"""Runware imageUpload (seed 002) over WebSocket and HTTP: ``/compat/runware/v1``."""

from loraforge.dialects.runware.router import create_app
from loraforge.http.dialect import Dialect

# The app serves ``/v1`` itself (HTTP POST and the WebSocket) under this prefix.
DIALECT = Dialect(name="runware", prefix="/compat/runware", create_app=create_app)

__all__ = ["DIALECT", "create_app"]
