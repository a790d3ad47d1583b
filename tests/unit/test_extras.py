"""Optional parts: which extra each configured part needs, and the one line when it is missing.

A missing extra is made real by adding a module that is not installed to its list.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loraforge import extras
from loraforge.bootstrap import check_extras, runs_ml
from loraforge.extras import MissingExtra
from loraforge.settings import Settings

ABSENT = "loraforge_test_module_that_is_not_installed"


def _uninstall(monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    monkeypatch.setitem(extras.EXTRAS, extra, (*extras.EXTRAS[extra], ABSENT))


def test_the_test_environment_has_every_extra() -> None:
    assert all(extras.installed(extra) for extra in extras.EXTRAS)


def test_require_names_the_extra_and_the_command_that_installs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _uninstall(monkeypatch, "celery")
    assert not extras.installed("celery")
    with pytest.raises(MissingExtra) as missing:
        extras.require("celery", by="LORAFORGE_QUEUE=celery")
    assert str(missing.value) == (
        "LORAFORGE_QUEUE=celery needs the 'celery' extra: pip install 'loraforge[celery]'"
    )
    extras.require("s3", by="anything")  # installed: nothing to say


@pytest.mark.parametrize(
    ("extra", "configured", "line"),
    [
        (
            "celery",
            {"queue": "celery"},
            "LORAFORGE_QUEUE=celery needs the 'celery' extra: pip install 'loraforge[celery]'",
        ),
        (
            "s3",
            {"blob_store": "s3", "s3_bucket": "b"},
            "LORAFORGE_BLOB_STORE=s3 needs the 's3' extra: pip install 'loraforge[s3]'",
        ),
        (
            "ml",
            {"captioning_model_dir": Path("/models/blip")},
            "LORAFORGE_CAPTIONING_MODEL_DIR needs the 'ml' extra: pip install 'loraforge[ml]'",
        ),
    ],
)
def test_a_configured_part_without_its_extra_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    extra: str,
    configured: dict[str, object],
    line: str,
) -> None:
    settings = Settings(data_dir=tmp_path, **configured)  # type: ignore[arg-type]
    check_extras(settings)  # every extra installed
    _uninstall(monkeypatch, extra)
    with pytest.raises(MissingExtra) as missing:
        check_extras(settings)
    assert str(missing.value) == line


def test_parts_that_are_not_configured_need_no_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for extra in extras.EXTRAS:
        _uninstall(monkeypatch, extra)
    check_extras(Settings(data_dir=tmp_path))  # SQLite, local blobs, inline queue
    with pytest.raises(MissingExtra, match=r"^The worker .* needs the 'ml' extra"):
        check_extras(Settings(data_dir=tmp_path), worker=True)


def test_without_ml_only_a_server_with_workers_elsewhere_takes_jobs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert runs_ml(Settings(data_dir=tmp_path))
    _uninstall(monkeypatch, "ml")
    assert not runs_ml(Settings(data_dir=tmp_path))  # its own workers would run them
    assert not runs_ml(Settings(data_dir=tmp_path, workers=3))
    assert runs_ml(Settings(data_dir=tmp_path, workers=0))
