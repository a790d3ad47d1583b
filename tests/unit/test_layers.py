"""The layer contracts catch what they promise: entry points that import each other, upward
imports, presenters that reach the container or the framework. Each case plants one forbidden
import in a copy of the source tree and runs import-linter on it, so a contract weakened by
accident (``:`` for ``|``) fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_with(tmp_path: Path, module: str, statement: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "src" / "loraforge", tmp_path / "src" / "loraforge")
    shutil.copytree(ROOT / "tools", tmp_path / "tools")
    target = tmp_path / "src" / module
    target.write_text(target.read_text() + f"\n{statement}  # planted by test_layers\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'src'}{os.pathsep}{tmp_path}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_hold_on_the_real_tree(tmp_path: Path) -> None:
    result = lint_with(tmp_path, "loraforge/api/__init__.py", "")
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "culprit"),
    [
        (
            "loraforge/api/routers/models.py",
            "import loraforge.dialects.photogpt",
            "loraforge.api.routers.models -> loraforge.dialects.photogpt",
        ),
        (
            "loraforge/dialects/scenario/router.py",
            "import loraforge.api.presenters",
            "loraforge.dialects.scenario.router -> loraforge.api.presenters",
        ),
        (
            "loraforge/http/deps.py",
            "import loraforge.api.errors",
            "loraforge.http.deps -> loraforge.api.errors",
        ),
        (
            "loraforge/api/native.py",
            "import loraforge.app",
            "loraforge.api.native -> loraforge.app",
        ),
        (
            "loraforge/services/models.py",
            "import loraforge.http.links",
            "loraforge.services.models -> loraforge.http.links",
        ),
        (
            "loraforge/api/presenters.py",
            "import loraforge.http.deps",
            "loraforge.api.presenters -> loraforge.http.deps",
        ),
        (
            "loraforge/dialects/scenario/translate.py",
            "import fastapi",
            "loraforge.dialects.scenario.translate -> fastapi",
        ),
    ],
    ids=[
        "api-imports-dialect",
        "dialect-imports-api",
        "kit-imports-api",
        "api-imports-app",
        "service-imports-kit",
        "presenter-reaches-container",
        "translator-imports-framework",
    ],
)
def test_a_forbidden_import_breaks_the_layers(
    tmp_path: Path, module: str, statement: str, culprit: str
) -> None:
    result = lint_with(tmp_path, module, statement)
    assert result.returncode != 0
    assert culprit in result.stdout
