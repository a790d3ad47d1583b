"""loraforge: a self-hosted backend for custom image-model products."""

__version__ = "0.1.0"
