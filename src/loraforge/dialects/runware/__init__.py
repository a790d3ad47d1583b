"""Runware imageUpload (seed 002) over WebSocket and HTTP: ``/compat/runware/v1``."""

from loraforge.dialects.runware.router import create_app

__all__ = ["create_app"]
