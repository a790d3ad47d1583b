"""Alembic, driven from code: the migrations ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from loraforge.adapters.db.engine import DbTimeouts
from loraforge.domain.errors import Unavailable

MIGRATIONS = Path(__file__).with_name("migrations")
TIMEOUTS = "loraforge.timeouts"  # the Config attribute env.py builds its engine with


def _config(url: str, connect_timeout_s: int = 5) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    # No statement limit: a migration may rewrite a big table.
    cfg.attributes[TIMEOUTS] = DbTimeouts(connect_s=connect_timeout_s)
    return cfg


def upgrade(url: str, revision: str = "head", *, connect_timeout_s: int = 5) -> None:
    """Raises ``Unavailable`` with one line saying where and why when the database cannot be
    reached (the first thing every command does, so an operator's typo gets a clear answer)."""
    try:
        command.upgrade(_config(url, connect_timeout_s), revision)
    except (OperationalError, InterfaceError) as exc:
        # Connecting failed (no statement yet) or the connection was lost; a migration's own
        # SQL error (SQLite reports those as OperationalError too) is a bug: its traceback.
        if exc.statement is not None and not exc.connection_invalidated:
            raise
        raise Unavailable(unreachable(url, exc)) from exc


def downgrade(url: str, revision: str) -> None:
    command.downgrade(_config(url), revision)


def unreachable(url: str, exc: OperationalError | InterfaceError) -> str:
    """``database not reachable at <url, password as ***>: <the driver's first line>``."""
    shown = make_url(url).render_as_string(hide_password=True)
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc.orig).__name__
    return f"database not reachable at {shown}: {reason}"
