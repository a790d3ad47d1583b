"""A database that cannot be reached at start-up: one clear line on stderr and exit code 2.

Run as an operator runs them (``python -m loraforge ...`` in a process of its own), so what is
checked is exactly what reaches the terminal: no traceback, no password.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.servers import free_port
from tests.freezing_proxy import FreezingProxy

PASSWORD = "s3cret-pw"  # must never be printed
RUN_TIMEOUT_S = 60.0


def run(
    data_dir: Path, database_url: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loraforge", *args, "--data-dir", str(data_dir)],
        env={**os.environ, "LORAFORGE_DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: database not reachable at "), lines[0]
    for part in expected:
        assert part in lines[0], lines[0]
    assert PASSWORD not in result.stderr + result.stdout
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["keys", "list"]])
def test_postgres_refusing_connections_is_one_line_and_exit_2(
    tmp_path: Path, command: list[str]
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://loraforge:{PASSWORD}@127.0.0.1:{port}/loraforge"

    result = run(tmp_path / "data", url, *command)

    assert_one_clear_line(
        result, f"postgresql://loraforge:***@127.0.0.1:{port}/loraforge", "Connection refused"
    )


def test_postgres_that_never_answers_is_one_line_after_the_connect_timeout(
    tmp_path: Path,
) -> None:
    with FreezingProxy(("127.0.0.1", free_port())) as proxy:
        proxy.freeze()  # accepts the connection, never answers
        url = f"postgresql://loraforge:{PASSWORD}@127.0.0.1:{proxy.port}/loraforge"
        started = time.monotonic()
        result = run(tmp_path / "data", url, "db", "upgrade", LORAFORGE_DB_CONNECT_TIMEOUT_S="2")
        took = time.monotonic() - started

    assert_one_clear_line(result, "timeout")
    assert took < RUN_TIMEOUT_S / 2


def test_sqlite_file_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file where the database's folder should be")
    url = f"sqlite:///{not_a_folder / 'loraforge.db'}"

    result = run(tmp_path / "data", url, "db", "upgrade")

    assert_one_clear_line(result, url, "unable to open database file")
