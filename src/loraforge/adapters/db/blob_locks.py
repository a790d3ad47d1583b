"""Blob-key locks for one transaction: PostgreSQL advisory locks, SQLite's writer lock."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from loraforge.adapters.db.engine import WRITE_OPTION

# First half of the two-int advisory lock id: keeps loraforge's blob locks apart from any
# other advisory locks in the database ("LF" in ASCII).
NAMESPACE = 0x4C46


def lock_id(key: str) -> int:
    """The second half: a signed 32-bit int from the key's first 8 hex digits. Two keys that
    share it only serialise with each other, which is safe."""
    value = int(key[:8], 16)
    return value - (1 << 32) if value >= 1 << 31 else value


class SqlBlobLockRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def lock(self, keys: Iterable[str]) -> None:
        if not self._advisory():
            return
        # One order for every transaction, so two writers of the same keys cannot deadlock.
        for lid in sorted({lock_id(k) for k in keys}):
            self._s.execute(
                text("SELECT pg_advisory_xact_lock(:ns, :id)"), {"ns": NAMESPACE, "id": lid}
            )

    def try_lock(self, keys: Iterable[str]) -> set[str]:
        wanted = set(keys)
        if not self._advisory():
            return wanted
        held: set[str] = set()
        for key in sorted(wanted):
            got = self._s.scalar(
                text("SELECT pg_try_advisory_xact_lock(:ns, :id)"),
                {"ns": NAMESPACE, "id": lock_id(key)},
            )
            if got:
                held.add(key)
        return held

    def _advisory(self) -> bool:
        """True on PostgreSQL. On SQLite a write transaction (BEGIN IMMEDIATE) already excludes
        every other writer, in this process and others, until it ends."""
        connection = self._s.connection()
        if connection.dialect.name == "postgresql":
            return True
        if connection.dialect.name == "sqlite":
            if not connection.get_execution_options().get(WRITE_OPTION, False):
                raise RuntimeError("blob keys can only be locked in a write transaction")
            return False
        raise RuntimeError(f"no blob locks for {connection.dialect.name}")
