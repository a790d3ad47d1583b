"""Alembic: head → base → head on SQLite and PostgreSQL, and the result matches the ORM."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import column, insert, inspect, select, table, text

from loraforge.adapters.db.engine import make_engine
from loraforge.adapters.db.migrate import MIGRATIONS, _config, downgrade, upgrade
from loraforge.adapters.db.tables import Base
from tests.databases import PostgresDatabases


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
def fresh_postgres(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """An empty database (not a copy of the migrated template)."""
    name = f"lf_mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_databases.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_databases.sqlalchemy_url(name)
    postgres_databases.drop(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest) -> str:
    name = "fresh_sqlite" if request.param == "sqlite" else "fresh_postgres"
    url: str = request.getfixturevalue(name)
    return url


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def schema_differences(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # The options ``alembic revision --autogenerate`` uses. Server defaults are left
            # out, as there: migrations add them to backfill existing rows.
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    assert tables(fresh_url) == set()

    upgrade(fresh_url)
    assert current_revision(fresh_url) == head_revision()
    assert tables(fresh_url) == set(Base.metadata.tables)
    assert schema_differences(fresh_url) == []

    downgrade(fresh_url, "base")
    assert current_revision(fresh_url) is None
    assert tables(fresh_url) == set()

    upgrade(fresh_url)
    assert current_revision(fresh_url) == head_revision()
    assert schema_differences(fresh_url) == []


def test_every_step_down_and_up_again(fresh_url: str) -> None:
    """Each revision's downgrade undoes exactly its upgrade (one step at a time)."""
    script = ScriptDirectory.from_config(_config(fresh_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions
    for revision in revisions:
        upgrade(fresh_url, revision)
        after_upgrade = tables(fresh_url)
        downgrade(fresh_url, "-1")
        upgrade(fresh_url, revision)
        assert tables(fresh_url) == after_upgrade
        assert current_revision(fresh_url) == revision
    assert schema_differences(fresh_url) == []


def test_0004_links_existing_predictions_to_the_other_models_they_mixed(fresh_url: str) -> None:
    upgrade(fresh_url, "0003")
    at = datetime(2026, 11, 29, tzinfo=UTC)
    table = Base.metadata.tables
    mix = [
        {"key": k, "model_id": m, "training_id": "t", "scale": 1.0} for k, m in enumerate("abab")
    ]
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(table["accounts"]).values(id="acc", name="n", created_at=at))
            for model_id in "ab":
                conn.execute(
                    insert(table["models"]).values(
                        id=model_id,
                        account_id="acc",
                        display_name="m",
                        base_model="tiny",
                        attributes={},
                        created_at=at,
                        updated_at=at,
                    )
                )
            conn.execute(
                insert(table["predictions"]).values(
                    id="p",
                    account_id="acc",
                    status="succeeded",
                    params={"scale_configs": mix},
                    progress={},
                    output_image_ids=[],
                    created_at=at,
                )
            )
        upgrade(fresh_url)
        with engine.connect() as conn:
            links = conn.execute(select(table["prediction_models"])).all()
    finally:
        engine.dispose()

    assert links == [("p", "b")]  # the first model owns the outputs; "b" once


def test_0005_marks_existing_captions_as_automatic(fresh_url: str) -> None:
    upgrade(fresh_url, "0004")
    at = datetime(2026, 12, 6, tzinfo=UTC)
    # The images table as 0004 left it: no caption_source yet.
    images = table("images", *(column(c) for c in IMAGE_COLUMNS_AT_0004))
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Base.metadata.tables["accounts"]).values(id="acc", name="n", created_at=at)
            )
            for image_id, caption in (("captioned", "a red dress"), ("bare", "")):
                conn.execute(
                    insert(images).values(
                        id=image_id,
                        account_id="acc",
                        kind="training",
                        format="png",
                        width=1,
                        height=1,
                        size_bytes=1,
                        sha256="0" * 64,
                        caption=caption,
                        description="",
                        original_key="0" * 64,
                        display_key="0" * 64,
                        display_mime="image/webp",
                        thumbnail_key="0" * 64,
                        thumbnail_mime="image/webp",
                        created_at=at,
                        last_used_at=at,
                        origin="scenario",
                    )
                )
        upgrade(fresh_url, "0005")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, caption_source FROM images ORDER BY id")).all()
    finally:
        engine.dispose()

    # Only Scenario's upload path wrote captions before: the captioning model's.
    assert [tuple(r) for r in rows] == [("bare", "none"), ("captioned", "auto")]


IMAGE_COLUMNS_AT_0004 = (
    "id", "account_id", "kind", "format", "width", "height", "size_bytes", "sha256", "caption",
    "description", "original_key", "display_key", "display_mime", "thumbnail_key",
    "thumbnail_mime", "created_at", "last_used_at", "origin",
)  # fmt: skip


def test_migrations_ship_with_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert any((MIGRATIONS / "versions").glob("0001_*.py"))
