"""The optional parts of loraforge and the extras that install them (pyproject's extras).

``pip install loraforge`` serves the API on SQLite or PostgreSQL, local blobs and the inline
queue. Trainings, predictions and captions need ``[ml]``, ``LORAFORGE_QUEUE=celery`` needs
``[celery]``, ``LORAFORGE_BLOB_STORE=s3`` needs ``[s3]``. The composition root asks here
before it picks an adapter, so a configured part whose extra is missing stops the program with
one line naming the extra instead of an ImportError deep in a traceback.

Only whether the packages are there is checked (``find_spec``): importing torch takes seconds.
"""

from __future__ import annotations

import importlib.util
import sys

EXTRAS: dict[str, tuple[str, ...]] = {
    # numpy is not the ml extra's alone: the dataset check (OpenCV, imagehash) needs it in
    # every installation, so the base package depends on it.
    # safetensors is not the ml extra's alone either: the API converts LoRA files (kohya
    # names, fp16) with it and numpy, no torch, so the base package depends on it.
    "ml": ("torch", "diffusers", "peft", "transformers"),
    "celery": ("celery", "kombu", "redis"),
    "s3": ("boto3", "botocore"),
}
"""Each extra and the top-level modules the adapters that need it import."""


class MissingExtra(Exception):
    """A configured part needs an extra that is not installed; ``str()`` is the line to show."""


def installed(extra: str) -> bool:
    return all(_importable(module) for module in EXTRAS[extra])


def require(extra: str, *, by: str) -> None:
    """Raise ``MissingExtra`` unless ``extra`` is installed; ``by`` names what needs it."""
    if not installed(extra):
        raise MissingExtra(missing_line(extra, by=by))


def missing_line(extra: str, *, by: str) -> str:
    return f"{by} needs the '{extra}' extra: pip install 'loraforge[{extra}]'"


def _importable(module: str) -> bool:
    if module in sys.modules:  # celery and kombu replace their module objects, spec and all
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook that refuses the module, or a broken parent
        return False
