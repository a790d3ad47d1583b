"""PhotoGPT images (seeds 000/001) and the models they belong to: ``/compat/photogpt``."""

from loraforge.dialects.photogpt.router import create_app

__all__ = ["create_app"]
