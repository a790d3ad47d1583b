"""Real databases for tests: a migrated SQLite file or PostgreSQL database per test.

PostgreSQL comes from ``LORAFORGE_TEST_POSTGRES_URL`` (default: the local server at
127.0.0.1:5432, trust auth, database ``test``). Where none answers, a throwaway server is
started from the system's PostgreSQL binaries; where that is impossible the tests fail.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from loraforge.adapters.db.migrate import upgrade

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _can_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_throwaway_server() -> str:
    """initdb + pg_ctl from the system packages, as the postgres user when we are root."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if not initdb:
        raise RuntimeError(
            "PostgreSQL is not reachable and no PostgreSQL binaries were found; "
            "install postgresql or set LORAFORGE_TEST_POSTGRES_URL"
        )
    bindir = Path(initdb).parent
    root = Path(tempfile.mkdtemp(prefix="lf-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = root / "data"
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(data)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    atexit.register(
        lambda: subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
    )
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


class PostgresDatabases:
    """Creates a migrated template once, then one database per test from it."""

    def __init__(self) -> None:
        admin = os.environ.get("LORAFORGE_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
        if not _can_connect(admin):
            admin = _start_throwaway_server()
        self.admin_url = admin
        self.template = f"lf_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._execute(f'CREATE DATABASE "{self.template}"')
        upgrade(self.sqlalchemy_url(self.template))

    def _execute(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def sqlalchemy_url(self, database: str) -> str:
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{base}/{database}"

    def create(self) -> str:
        name = f"lf_t_{uuid.uuid4().hex[:12]}"
        for attempt in range(20):
            try:
                self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                break
            except psycopg.errors.ObjectInUse:  # the template is briefly busy: retry
                time.sleep(0.05 * (attempt + 1))
        else:
            raise RuntimeError("could not create a test database")
        return name

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.drop(self.template)


class SqliteDatabases:
    """A migrated template file, copied for each test."""

    def __init__(self, root: Path) -> None:
        self.template = root / "template.db"
        upgrade(f"sqlite:///{self.template}")

    def create(self, directory: Path) -> str:
        target = directory / "loraforge.db"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"
