"""Alembic environment: online migrations against the URL the caller configured."""

from __future__ import annotations

from alembic import context

from loraforge.adapters.db.engine import DbTimeouts, make_engine
from loraforge.adapters.db.migrate import TIMEOUTS
from loraforge.adapters.db.tables import Base

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
# upgrade() passes connect timeouts and no statement limit; alembic's own CLI passes nothing.
timeouts = context.config.attributes.get(TIMEOUTS)
engine = make_engine(url, timeouts if isinstance(timeouts, DbTimeouts) else None)
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
finally:
    engine.dispose()
