"""Engine construction: SQLite tuned for safe concurrent use, PostgreSQL as is."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import ConnectionPoolEntry

from loraforge.domain.errors import BadRequest

# Waiting writers block up to this long instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "loraforge_write"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url)
    else:
        # LIFO keeps the few hot connections in use instead of cycling through the whole pool.
        engine = create_engine(
            url, pool_pre_ping=True, pool_use_lifo=True, pool_size=10, max_overflow=20
        )
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def _refuse_nul(
    _conn: Connection, _cursor: Any, _sql: str, parameters: Any, _context: Any, _many: bool
) -> None:
    """PostgreSQL cannot hold NUL in text and psycopg fails the statement (a 500 for an id
    like ``%00`` in a URL); SQLite stores it. Refuse it on both, before the statement runs, so
    every database answers the same 400."""
    rows = parameters if isinstance(parameters, list) else [parameters]
    for row in rows:
        values = row.values() if isinstance(row, dict) else row or ()
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise BadRequest("Text may not contain NUL characters.")


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=10,
        max_overflow=20,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE can be issued below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY
        # (the busy timeout does not apply to lock upgrades), so writers lock up front.
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
