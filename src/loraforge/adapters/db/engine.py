"""Engine construction: SQLite tuned for safe concurrent use, PostgreSQL with time limits.

PostgreSQL never gets to hold a request forever (see ``DbTimeouts``):

- connecting has libpq's ``connect_timeout`` (psycopg's default is 130 s);
- the server cancels a statement after ``statement_timeout`` (set on each new connection with
  ``SET``, which poolers such as PgBouncer accept, unlike the ``options`` startup parameter);
- a server that accepts TCP but never answers (hung, stopped, a frozen VM or proxy) is what
  neither of those catches: its kernel still acknowledges what we send, so TCP keepalives and
  ``tcp_user_timeout`` never fire, and psycopg waits for an answer without limit. Every round
  trip of a connection therefore has a deadline here (``_DeadlineConnection``): a server silent
  for longer is dropped, and the pool drops every connection made before;
- waiting for a free pooled connection has ``pool_timeout``;
- after the database did not answer in time, new connections fail at once for a moment
  (``_ConnectGate``), so that during an outage requests answer 503 at once instead of each
  waiting for the connect timeout, while one attempt at a time finds out when it is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import PQGen
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from loraforge.domain.errors import BadRequest

# Waiting writers block up to this long instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "loraforge_write"
# A server cancelling a statement at its timeout answers at once: this much longer, the client
# takes the silence for a hung server.
ANSWER_GRACE_S = 1.0
# After a failure, new connections fail at once for this long; then one attempt goes through.
RETRY_CONNECT_S = 1.0


@dataclass(frozen=True)
class DbTimeouts:
    """The database's time limits. SQLite, a local file with its own busy timeout, uses only
    ``pool_s``.

    ``statement_s`` None: no statement limit, for migrations (building an index on a big table
    may take long and send nothing meanwhile)."""

    connect_s: int = 5
    statement_s: float | None = None
    pool_s: float = 30.0


def make_engine(url: str, timeouts: DbTimeouts | None = None) -> Engine:
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url, (timeouts or DbTimeouts()).pool_s)
    else:
        engine = _postgres_engine(url, timeouts or DbTimeouts())
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


def _postgres_engine(url: str, timeouts: DbTimeouts) -> Engine:
    engine = create_engine(
        url,
        pool_pre_ping=True,
        # LIFO keeps the few hot connections in use instead of cycling through the whole pool.
        pool_use_lifo=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=timeouts.pool_s,
        connect_args={"connect_timeout": timeouts.connect_s},
    )
    if engine.dialect.driver != "psycopg":  # another driver: its own connections, no deadlines
        return engine
    gate = _ConnectGate()
    statement_s = timeouts.statement_s or None
    answer_s = statement_s + ANSWER_GRACE_S if statement_s else None

    @event.listens_for(engine, "do_connect")
    def _connect(
        _dialect: Dialect, _record: ConnectionPoolEntry, cargs: Any, cparams: Any
    ) -> _DeadlineConnection:
        with gate.attempt():
            conn = _DeadlineConnection.connect(*cargs, **cparams)
            conn.gate, conn.answer_s = gate, answer_s
            if statement_s:
                try:
                    conn.execute(
                        "SELECT set_config('statement_timeout', %s, false)",
                        [str(round(statement_s * 1000))],
                    )
                    conn.commit()
                except BaseException:
                    conn.close()
                    raise
        return conn

    _limit_pings(engine.dialect, timeouts.connect_s)
    return engine


def _limit_pings(dialect: Dialect, limit_s: float) -> None:
    """The pool's liveness check of an idle connection answers within the connect timeout: a
    statement may legitimately take longer, a ``SELECT`` of nothing may not."""
    ping = dialect.do_ping

    def do_ping(dbapi_connection: DBAPIConnection) -> bool:
        conn: object = dbapi_connection
        if not isinstance(conn, _DeadlineConnection):
            return ping(dbapi_connection)
        with conn.answering_within(limit_s):
            return ping(dbapi_connection)

    dialect.do_ping = do_ping  # type: ignore[method-assign]


class _DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every round trip has a deadline (``answer_s``, None: none).

    Every exchange with the server (execute, fetch, commit, rollback) goes through ``wait``.
    Past the deadline the connection is closed, its protocol state being unknown, and the
    error is a disconnection, so SQLAlchemy invalidates the pool's older connections too.
    """

    gate: _ConnectGate | None = None
    answer_s: float | None = None

    def wait(self, gen: PQGen[Any], interval: float = 0.1, timeout: float | None = None) -> Any:
        limit = self.answer_s
        if limit is None or (timeout is not None and timeout <= limit):
            return super().wait(gen, interval=interval, timeout=timeout)
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except pg_errors._WaitTimeout:  # psycopg's own "no answer in time" (3.3)
            self.pgconn.finish()
            if self.gate is not None:
                self.gate.failed("the database did not answer in time")
            raise psycopg.OperationalError(
                f"the database did not answer within {limit:g} s"
            ) from None

    @contextmanager
    def answering_within(self, limit_s: float) -> Iterator[None]:
        saved, self.answer_s = self.answer_s, limit_s
        try:
            yield
        finally:
            self.answer_s = saved


class _ConnectGate:
    """Fails new connections at once for ``RETRY_CONNECT_S`` after the database did not
    answer in time, then lets one attempt at a time through until one succeeds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self._reason = ""
        self._probing = False

    @contextmanager
    def attempt(self) -> Iterator[None]:
        with self._lock:
            failed_at = self._failed_at
            if failed_at is not None:
                ago = time.monotonic() - failed_at
                if self._probing or ago < RETRY_CONNECT_S:
                    raise psycopg.OperationalError(
                        f"{self._reason} (last attempt {ago:.1f} s ago; retrying soon)"
                    )
                self._probing = True
        try:
            yield
        except pg_errors.ConnectionTimeout:
            # Only a wait is worth sparing: a refused connection fails at once anyway, and
            # the first attempt after the database is back must not be refused here.
            self.failed("the database did not answer in time when connecting")
            raise
        else:
            with self._lock:
                self._failed_at = None
        finally:
            if failed_at is not None:
                with self._lock:
                    self._probing = False

    def failed(self, reason: str) -> None:
        with self._lock:
            self._failed_at, self._reason = time.monotonic(), reason


def _sqlite_engine(url: str, pool_s: float) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=10,
        max_overflow=20,
        pool_timeout=pool_s,
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
