"""Run a module as if loraforge were installed without some extras.

``python -m tests.without_extras ml,celery,s3 loraforge serve --port 8000`` runs
``python -m loraforge serve --port 8000`` in a process where every module of those extras
(``loraforge.extras.EXTRAS``: torch, diffusers, celery, boto3 …) fails to import exactly as an
uninstalled package does, whatever is installed in the environment.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

from loraforge.extras import EXTRAS


class Uninstalled(MetaPathFinder):
    """Answers every import of the given top-level modules (and their submodules) with
    ``ModuleNotFoundError``, before any other finder can find them."""

    def __init__(self, modules: set[str]) -> None:
        self._modules = modules

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self._modules:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None  # not ours: the next finder looks


def uninstall(extras: Sequence[str]) -> None:
    modules = {module for extra in extras for module in EXTRAS[extra]}
    already = sorted(name for name in sys.modules if name.partition(".")[0] in modules)
    assert not already, f"imported before they could be blocked: {already}"
    sys.meta_path.insert(0, Uninstalled(modules))


def main(argv: list[str]) -> None:
    extras, module, *args = argv
    uninstall([extra for extra in extras.split(",") if extra])
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
