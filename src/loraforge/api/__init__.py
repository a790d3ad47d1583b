"""The native HTTP API (FastAPI), mounted at ``/v1``."""
