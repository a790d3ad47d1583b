"""The docs document every setting and every native endpoint; these tests fail when not.

The README is a quick start that links to ``docs/``, which holds the reference: the settings
table (docs/settings.md), the endpoint table (docs/api.md) and the training table
(docs/training.md) are checked against the code, and every link between the pages against the
files and headings it points to.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from loraforge.adapters.ml.registry import TINY
from loraforge.app import create_app
from loraforge.domain.ml import BaseModel, ModelFamily
from loraforge.domain.work import TrainingSpeed
from loraforge.services.training_plan import plan
from loraforge.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, ROOT / "BENCHMARKS.md", *sorted(DOCS.glob("*.md"))]
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
QUICK_START_LINES = 250


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


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
    documented = _settings_table_vars(_page("settings.md"))
    missing = [
        _expected_row(name, field)
        for name, field in Settings.model_fields.items()
        if f"LORAFORGE_{name.upper()}" not in documented
    ]
    assert not missing, "add to the settings table in docs/settings.md:\n" + "\n".join(missing)


def test_the_settings_table_shows_each_default_and_description() -> None:
    lines = set(_page("settings.md").splitlines())
    stale = [
        _expected_row(name, field)
        for name, field in Settings.model_fields.items()
        if _expected_row(name, field) not in lines
    ]
    assert not stale, "update these rows of docs/settings.md:\n" + "\n".join(stale)


def test_the_settings_table_lists_no_setting_that_does_not_exist() -> None:
    known = {f"LORAFORGE_{name.upper()}" for name in Settings.model_fields}
    stale = sorted(_settings_table_vars(_page("settings.md")) - known)
    assert not stale, f"docs/settings.md documents settings that do not exist: {stale}"


def test_every_native_endpoint_is_in_the_endpoint_table(tmp_path: Path) -> None:
    operations = _native_operations(tmp_path)
    assert "POST /v1/models" in operations  # the listing itself works
    rows = {line for line in _page("api.md").splitlines() if line.startswith("| `")}
    missing = [op for op in operations if not any(f"| `{op}` |" in row for row in rows)]
    assert not missing, f"endpoints missing from the table in docs/api.md: {missing}"


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


FLOW_MODEL = BaseModel(name="flux", family=ModelFamily.FLUX, resolution=1024)


def plan_table_rows(base: BaseModel = TINY) -> list[str]:
    """A hyperparameter table of docs/training.md, as ``training_plan.py`` computes it."""
    rows = []
    for speed in TrainingSpeed:
        for strength in (0, 5, 10):
            h = plan(base, strength=strength, speed=speed, seed=0)
            gamma = "—" if h.snr_gamma is None else h.snr_gamma
            rows.append(
                f"| `{speed.value}` | {strength} | {h.steps} | {h.learning_rate:g} | "
                f"{h.rank} | {h.resolution} | {gamma} | {h.checkpoint_every} |"
            )
    return rows


@pytest.mark.parametrize("base", [TINY, FLOW_MODEL], ids=["sd", "flow-matching"])
def test_the_training_tables_match_the_plan(base: BaseModel) -> None:
    text = _page("training.md")
    missing = [row for row in plan_table_rows(base) if row not in text]
    assert not missing, "update the training table in docs/training.md:\n" + "\n".join(missing)


def test_the_readme_stays_a_quick_start() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= QUICK_START_LINES, f"README.md has {lines} lines: move reference to docs/"


def _quick_start_calls(text: str) -> list[str]:
    """``"METHOD /v1/path"`` of each curl call on ``$BASE`` in the README's console block,
    its shell variables (``$MODEL``) as OpenAPI path parameters (``{}``)."""
    block = text.split("```console\n", 1)[1].split("```", 1)[0]
    commands = re.split(r"\n(?=\$ )", block)
    calls = []
    for command in commands:
        for call in re.findall(r"curl [^|;]*", command):
            path = re.search(r"\$BASE(/v1/[^\s\"'?]*)", call)  # the path, without a query
            if path is None:
                continue
            method = re.search(r"-X (\w+)", call)
            shape = re.sub(r"\$\w+", "{}", path.group(1))
            calls.append(f"{method.group(1) if method else 'GET'} {shape}")
    return calls


def test_the_quick_start_calls_endpoints_that_exist(tmp_path: Path) -> None:
    operations = {re.sub(r"\{\w+\}", "{}", op) for op in _native_operations(tmp_path)}
    calls = _quick_start_calls(README.read_text(encoding="utf-8"))
    assert "POST /v1/models/{}/trainings" in calls  # a model is trained and used
    assert "POST /v1/predictions" in calls
    unknown = [call for call in calls if call not in operations]
    assert not unknown, f"the README's quick start calls endpoints that do not exist: {unknown}"


def _anchors(text: str) -> set[str]:
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces as ``-``;
    a repeated heading gets ``-1``, ``-2`` …. Lines inside code blocks are no headings."""
    anchors: set[str] = set()
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"#{1,6} (.+)", line)
        if fenced or heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        unique, n = slug, 0
        while unique in anchors:
            n += 1
            unique = f"{slug}-{n}"
        anchors.add(unique)
    return anchors


def _relative_links(text: str) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_between_pages_points_at_a_file_and_heading(page: Path) -> None:
    broken = []
    for link in _relative_links(page.read_text(encoding="utf-8")):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        exists = path.exists()
        if not exists or (anchor and anchor not in _anchors(path.read_text(encoding="utf-8"))):
            broken.append(link)
    assert not broken, f"broken links in {page.name}: {broken}"


def test_the_anchor_rules() -> None:
    text = "# Your own base models (SD 1.5 and SDXL)\n```sh\n# a comment\n```\n## Optional parts\n"
    assert _anchors(text + "## Optional parts\n") == {
        "your-own-base-models-sd-15-and-sdxl",
        "optional-parts",
        "optional-parts-1",
    }
    assert _relative_links("[a](docs/api.md#endpoints) [b](https://x.y/) ![c](../s.png)") == [
        "docs/api.md#endpoints",
        "../s.png",
    ]


def _error_codes_in_source() -> set[str]:
    """Every error code the code can answer: ``code = "…"`` on an error class, ``code="…"`` when
    raising one. Vendor codes of the dialects are camelCase or their own tables, not these."""
    found: set[str] = set()
    for path in (ROOT / "src" / "loraforge").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names_code = (
                isinstance(node, ast.Assign)
                and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["code"]
            ) or (isinstance(node, ast.keyword) and node.arg == "code")
            value = getattr(node, "value", None) if names_code else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(value.value)
    return found


def _documented_error_codes() -> set[str]:
    """The codes in the second cell of the status table of docs/errors.md."""
    rows = re.findall(r"^\|\s*\d{3}\s*\|([^|]*)\|", _page("errors.md"), flags=re.MULTILINE)
    return {code for cell in rows for code in re.findall(r"`([a-z_]+)`", cell)}


def test_every_error_code_is_in_the_errors_table() -> None:
    # "error", "conflict" and "gone" are base classes' placeholders: every raise names its own code.
    missing = _error_codes_in_source() - _documented_error_codes() - {"error", "conflict", "gone"}
    assert not missing, f"docs/errors.md does not list: {sorted(missing)}"


def test_the_error_code_scan_finds_codes_of_both_forms() -> None:
    codes = _error_codes_in_source()
    assert {"not_found", "payload_too_large"} <= codes  # class attributes
    assert {"already_training", "limit_reached"} <= codes  # keyword at the raise
