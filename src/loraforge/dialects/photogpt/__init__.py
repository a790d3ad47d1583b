"""PhotoGPT images (seeds 000/001) and the models they belong to: ``/compat/photogpt``."""

from loraforge.dialects.photogpt.router import create_app
from loraforge.http.dialect import Dialect

DIALECT = Dialect(name="photogpt", prefix="/compat/photogpt", create_app=create_app)

__all__ = ["DIALECT", "create_app"]
