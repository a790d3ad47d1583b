"""SQLAlchemy 2 persistence: tables, engine, unit of work, Alembic migrations."""
