"""The ``loraforge`` command line, run in-process on SQLite and PostgreSQL.

Each command gets ``--data-dir`` and ``LORAFORGE_DATABASE_URL`` like an operator would pass them;
the results are checked through a container built on the same settings.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner, Result

from loraforge.bootstrap import Container, build
from loraforge.cli.main import app
from loraforge.domain.entities import ALL_FORMATS, ImageKind, ImageVariant
from loraforge.domain.errors import NotFound, Unauthenticated
from loraforge.services.dev_key import DEV_KEY_FILE, ensure_dev_key
from loraforge.services.images import Upload
from loraforge.services.keys import PREFIX_LEN, hash_key
from loraforge.settings import Settings
from tests import imagefactory


@dataclass
class Cli:
    settings: Settings
    runner: CliRunner

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(
            app,
            [*args, "--data-dir", str(self.settings.data_dir)],
            env={"LORAFORGE_DATABASE_URL": self.settings.resolved_database_url()},
        )

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def create_key(self, name: str = "x") -> tuple[str, Result]:
        result = self.ok("keys", "create", "--name", name)
        return result.stdout.splitlines()[-1], result


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli(settings=settings, runner=CliRunner())


@pytest.fixture
def built(settings: Settings) -> Iterator[Container]:
    """A container on the same database and data dir as the CLI, to check what it did."""
    container = build(settings)
    yield container
    container.close()


def _all_stored_text(database_url: str) -> str:
    """Every value of every row of every table, as one string."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            parts: list[str] = []
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                    parts.extend(str(value) for value in row)
            return "\n".join(parts)
    finally:
        engine.dispose()


def test_keys_create_prints_the_key_last_and_it_authenticates(cli: Cli, built: Container) -> None:
    key, result = cli.create_key("ci")

    assert key.startswith("lf_")
    assert result.stdout.endswith(key + "\n")
    assert key not in result.stderr  # printed once, on stdout only
    principal = built.keys.authenticate(key)
    assert f"key {principal.key_id} for account {principal.account_id}" in result.stderr


def test_keys_create_stores_only_the_hash(cli: Cli, settings: Settings) -> None:
    key, _ = cli.create_key("ci")

    engine = create_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    assert rows[0]["key_hash"] == hash_key(key)
    assert rows[0]["prefix"] == key[:PREFIX_LEN]
    assert key not in _all_stored_text(settings.resolved_database_url())
    assert key[PREFIX_LEN:] not in _all_stored_text(settings.resolved_database_url())


def test_keys_create_adds_to_an_existing_account(cli: Cli, built: Container) -> None:
    first, _ = cli.create_key("first")
    account = built.keys.authenticate(first).account_id

    second = cli.ok("keys", "create", "--name", "second", "--account", account)

    assert built.keys.authenticate(second.stdout.splitlines()[-1]).account_id == account


def test_keys_create_for_an_unknown_account_fails_cleanly(cli: Cli, built: Container) -> None:
    result = cli("keys", "create", "--name", "x", "--account", "no-such-account")

    assert result.exit_code == 1
    assert "No account no-such-account." in result.stderr
    assert result.stdout == ""
    assert built.keys.list() == []


def test_keys_list_shows_ids_and_names_but_never_the_secret(cli: Cli, built: Container) -> None:
    key, _ = cli.create_key("deploy bot")
    key_id = built.keys.authenticate(key).key_id

    listed = cli.ok("keys", "list").stdout

    header, row = listed.splitlines()
    assert header.split("\t") == ["id", "name", "account", "prefix", "created", "revoked"]
    fields = row.split("\t")
    assert fields[:2] == [key_id, "deploy bot"]  # whole, not cut short to fit a terminal
    assert fields[3] == key[:PREFIX_LEN]
    assert fields[5] == ""
    assert key not in listed
    assert key[PREFIX_LEN:] not in listed


def test_keys_revoke_stops_the_key(cli: Cli, built: Container) -> None:
    key, _ = cli.create_key()
    key_id = built.keys.authenticate(key).key_id

    result = cli.ok("keys", "revoke", key_id)

    assert f"revoked {key_id}" in result.stderr
    with pytest.raises(Unauthenticated):
        built.keys.authenticate(key)
    row = cli.ok("keys", "list").stdout.splitlines()[1].split("\t")
    assert row[0] == key_id
    assert row[5] != ""  # the revocation time


def test_keys_revoke_unknown_id_fails_with_a_message(cli: Cli) -> None:
    result = cli("keys", "revoke", "no-such-key")

    assert result.exit_code != 0
    assert "No API key no-such-key." in result.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LORAFORGE_BLOB_STORE": "s3"}, "LORAFORGE_BLOB_STORE=s3 needs LORAFORGE_S3_BUCKET"),
        ({"LORAFORGE_PORT": "eighty"}, "LORAFORGE_PORT: Input should be a valid integer"),
    ],
)
def test_an_invalid_setting_is_one_clear_line_not_a_traceback(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path)], env=env)

    assert result.exit_code == 2
    assert "invalid setting" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_db_upgrade_is_idempotent(cli: Cli, settings: Settings) -> None:
    def version() -> list[str]:
        engine = create_engine(settings.resolved_database_url())
        try:
            with engine.connect() as conn:
                return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
        finally:
            engine.dispose()

    first = cli.ok("db", "upgrade")
    head = version()
    second = cli.ok("db", "upgrade")

    assert "database is up to date" in first.stderr
    assert "database is up to date" in second.stderr
    assert len(head) == 1
    assert version() == head


def test_db_upgrade_creates_the_default_sqlite_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    runner = CliRunner()

    for _ in range(2):
        result = runner.invoke(
            app,
            ["db", "upgrade", "--data-dir", str(data_dir)],
            env={"LORAFORGE_DATABASE_URL": None},
        )
        assert result.exit_code == 0, result.output

    assert (data_dir / "loraforge.db").is_file()


def test_blobs_sweep_removes_only_unreferenced_blobs(
    cli: Cli, built: Container, settings: Settings
) -> None:
    issued = built.keys.create(name="t")
    who = built.keys.authenticate(issued.plaintext)
    model = built.models.create(who, display_name="m", custom_model_type=None)
    image = built.images.ingest(
        who,
        Upload(stream=io.BytesIO(imagefactory.jpeg(64, 48))),
        kind=ImageKind.TRAINING,
        model_id=model.id,
        allowed=ALL_FORMATS,
    )
    orphan = built.blobs.put_bytes(b"bytes that no image references")
    (settings.data_dir / "blobs" / "tmp" / "left-by-a-crash").write_bytes(b"partial")
    # Age every file past the grace period, so only references decide.
    old = time.time() - 2 * settings.blob_sweep_grace_s
    for path in (settings.data_dir / "blobs").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))

    result = cli.ok("blobs", "sweep")

    used = len(image.blob_keys())  # original, display, thumbnail (the last two may coincide)
    assert f"examined {used + 1} blobs, removed 1, removed 1 stale temp files" in result.stderr
    with pytest.raises(NotFound):
        built.blobs.size(orphan.key)
    for variant in ImageVariant:
        built.images.open(image, variant).stream.close()
    again = cli.ok("blobs", "sweep").stderr
    assert f"examined {used} blobs, removed 0, removed 0 stale temp files" in again


def test_ensure_dev_key_creates_a_private_file_once_and_reuses_it(container: Container) -> None:
    key, path, created = ensure_dev_key(container.keys, container.settings.data_dir)

    assert created
    assert path == container.settings.data_dir / DEV_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key + "\n"
    container.keys.authenticate(key)

    again, again_path, created_again = ensure_dev_key(container.keys, container.settings.data_dir)

    assert (again, again_path, created_again) == (key, path, False)
    assert len(container.keys.list()) == 1


def test_ensure_dev_key_replaces_a_revoked_key(container: Container) -> None:
    key, path, _ = ensure_dev_key(container.keys, container.settings.data_dir)
    container.keys.revoke(container.keys.authenticate(key).key_id)

    fresh, fresh_path, created = ensure_dev_key(container.keys, container.settings.data_dir)

    assert created
    assert fresh != key
    assert fresh_path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == fresh + "\n"
    container.keys.authenticate(fresh)
