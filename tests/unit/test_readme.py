"""The README documents every setting and every native endpoint; these tests fail when not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from loraforge.adapters.ml.registry import TINY
from loraforge.app import create_app
from loraforge.domain.work import TrainingSpeed
from loraforge.services.training_plan import plan
from loraforge.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _settings_table_vars(text: str) -> set[str]:
    """``LORAFORGE_*`` names in the first cell of the settings table's rows."""
    return set(re.findall(r"^\|\s*`(LORAFORGE_[A-Z0-9_]+)`\s*\|", text, flags=re.MULTILINE))


def _expected_row(name: str, field: FieldInfo) -> str:
    """The settings-table row for a field, from its default and description."""
    default = field.get_default(call_default_factory=True)
    shown = "unset" if default is None else f"`{default}`"
    return f"| `LORAFORGE_{name.upper()}` | {shown} | {field.description} |"


def _native_operations(tmp_path: Path) -> list[str]:
    """``"METHOD /v1/path"`` for every native route; the app is built, never started."""
    app = create_app(Settings(data_dir=tmp_path / "data"))
    # The OpenAPI document is FastAPI's public listing of every route and method
    # (routers are included lazily, so app.routes does not show them flattened).
    paths = app.openapi()["paths"]
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        if path.startswith("/v1/")
        for method in operations
        if method in HTTP_METHODS
    )


def test_every_setting_is_in_the_settings_table() -> None:
    documented = _settings_table_vars(_readme())
    missing = [
        _expected_row(name, field)
        for name, field in Settings.model_fields.items()
        if f"LORAFORGE_{name.upper()}" not in documented
    ]
    assert not missing, "add to the README's settings table:\n" + "\n".join(missing)


def test_the_settings_table_shows_each_default_and_description() -> None:
    lines = set(_readme().splitlines())
    stale = [
        _expected_row(name, field)
        for name, field in Settings.model_fields.items()
        if _expected_row(name, field) not in lines
    ]
    assert not stale, "update these rows of the README's settings table:\n" + "\n".join(stale)


def test_the_settings_table_lists_no_setting_that_does_not_exist() -> None:
    known = {f"LORAFORGE_{name.upper()}" for name in Settings.model_fields}
    stale = sorted(_settings_table_vars(_readme()) - known)
    assert not stale, f"the README documents settings that do not exist: {stale}"


def test_every_native_endpoint_is_in_the_readme(tmp_path: Path) -> None:
    operations = _native_operations(tmp_path)
    assert "POST /v1/models" in operations  # the listing itself works
    text = _readme()
    missing = [op for op in operations if f"`{op}`" not in text]
    assert not missing, f"endpoints missing from the README: {missing}"


def test_building_the_app_for_the_check_starts_nothing(tmp_path: Path) -> None:
    _native_operations(tmp_path)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("| `LORAFORGE_PORT` | `8000` | Port. |", {"LORAFORGE_PORT"}),
        ("Set `LORAFORGE_PORT` to change it.", set()),
        ("|`LORAFORGE_A_B`|x|", {"LORAFORGE_A_B"}),
    ],
)
def test_the_settings_table_parser(text: str, expected: set[str]) -> None:
    assert _settings_table_vars(text) == expected


def plan_table_rows() -> list[str]:
    """The README's hyperparameter table, as ``services/training_plan.py`` computes it."""
    rows = []
    for speed in TrainingSpeed:
        for strength in (0, 5, 10):
            h = plan(TINY, strength=strength, speed=speed, seed=0)
            rows.append(
                f"| `{speed.value}` | {strength} | {h.steps} | {h.learning_rate:g} | "
                f"{h.rank} | {h.resolution} | {h.snr_gamma} | {h.checkpoint_every} |"
            )
    return rows


def test_the_training_table_matches_the_plan() -> None:
    text = _readme()
    missing = [row for row in plan_table_rows() if row not in text]
    assert not missing, "update the README's training table:\n" + "\n".join(missing)
