"""Unit of work over one SQLAlchemy session; the factory is the ``UnitOfWorkFactory`` port."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from loraforge.adapters.db.blob_locks import SqlBlobLockRepository
from loraforge.adapters.db.caption_runs import SqlCaptionRunRepository
from loraforge.adapters.db.engine import WRITE_OPTION
from loraforge.adapters.db.pairs import SqlTrainingPairRepository
from loraforge.adapters.db.provenance import SqlSigningKeyRepository, SqlTrainingReceiptRepository
from loraforge.adapters.db.receipts import SqlTaskReceiptRepository
from loraforge.adapters.db.repositories import (
    SqlAccountRepository,
    SqlApiKeyRepository,
    SqlImageRepository,
    SqlModelRepository,
)
from loraforge.adapters.db.training_outputs import SqlTrainingOutputRepository
from loraforge.adapters.db.work_repositories import (
    SqlJobRepository,
    SqlPredictionRepository,
    SqlTrainingRepository,
    SqlWebhookRepository,
)
from loraforge.domain.errors import BadRequest, Unavailable

log = logging.getLogger(__name__)


class SqlUnitOfWork:
    def __init__(self, session: Session) -> None:
        self._session = session
        self.accounts = SqlAccountRepository(session)
        self.api_keys = SqlApiKeyRepository(session)
        self.models = SqlModelRepository(session)
        self.images = SqlImageRepository(session)
        self.trainings = SqlTrainingRepository(session)
        self.predictions = SqlPredictionRepository(session)
        self.caption_runs = SqlCaptionRunRepository(session)
        self.jobs = SqlJobRepository(session)
        self.webhooks = SqlWebhookRepository(session)
        self.receipts = SqlTaskReceiptRepository(session)
        self.pairs = SqlTrainingPairRepository(session)
        self.blob_locks = SqlBlobLockRepository(session)
        self.signing_keys = SqlSigningKeyRepository(session)
        self.training_receipts = SqlTrainingReceiptRepository(session)
        self.training_outputs = SqlTrainingOutputRepository(session)

    def commit(self) -> None:
        self._session.commit()

    def rollback(self) -> None:
        self._session.rollback()


class SqlUnitOfWorkFactory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @contextmanager
    def __call__(self, *, write: bool = False) -> Iterator[SqlUnitOfWork]:
        session = (self._write if write else self._read)()
        try:
            yield SqlUnitOfWork(session)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            session.rollback()
            log.warning("database error, answered as unavailable: %s", getattr(exc, "orig", exc))
            raise Unavailable("The database is not available.") from exc
        except DataError as exc:
            # A value the database refuses to hold (e.g. JSON text with an escaped NUL in a
            # PostgreSQL JSONB column) came from the client: its 400, not a 500.
            session.rollback()
            raise BadRequest("The request holds a value the database cannot store.") from exc
        finally:
            session.close()

    def check(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (DBAPIError, PoolTimeout) as exc:
            raise Unavailable("The database is not available.") from exc
