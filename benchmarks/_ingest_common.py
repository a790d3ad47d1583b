"""What every phase of the ingest benchmark shares: the run's configuration, the settings the
server and the in-process containers get, the database it runs on, and its log."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks._harness import throwaway_postgres
from loraforge.settings import Settings

MB = 1_000_000  # sizes and RSS are reported in MB of 10^6 bytes, as the targets are written
MAX_IMAGES_PER_TYPE = 1_000_000  # uploads go to a few models; the per-type limit is not measured


@dataclass(frozen=True)
class Config:
    quick: bool
    uploads: dict[int, int]  # concurrency -> number of uploads
    pipeline_runs: int
    large_uploads: int
    large_bytes: int
    total_images: int
    models: int
    list_requests: int
    database_url: str | None
    keep_data: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        quick = bool(args.quick)
        return cls(
            quick=quick,
            uploads={1: 4, 4: 8, 16: 16} if quick else {1: 16, 4: 32, 16: 64},
            pipeline_runs=3 if quick else 10,
            large_uploads=16,
            large_bytes=20 * MB,
            total_images=args.images,
            models=args.models,
            list_requests=100 if quick else 500,
            database_url=args.database_url,
            keep_data=bool(args.keep_data),
        )

    @property
    def backend(self) -> str:
        return "postgresql" if self.database_url else "sqlite"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LORAFORGE_DATA_DIR=str(data_dir),
        LORAFORGE_MAX_IMAGES_PER_TYPE=str(MAX_IMAGES_PER_TYPE),
        LORAFORGE_BLOB_SWEEP_INTERVAL_S="0",
        LORAFORGE_LOG_LEVEL="warning",
        # Only the API process is measured: no training/prediction worker processes beside it.
        LORAFORGE_WORKERS="0",
    )
    if database_url:
        env["LORAFORGE_DATABASE_URL"] = database_url
    else:
        env.pop("LORAFORGE_DATABASE_URL", None)
    return env


def bench_settings(data_dir: Path, database_url: str | None) -> Settings:
    """The settings the server subprocess gets from ``server_env``, for in-process use."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        max_images_per_type=MAX_IMAGES_PER_TYPE,
        blob_sweep_interval_s=0,
    )


@contextmanager
def database(config: Config) -> Iterator[str | None]:
    """None for SQLite (the default file in the data dir), else a throwaway PostgreSQL DB."""
    if config.database_url is None:
        yield None
    else:
        with throwaway_postgres(config.database_url) as url:
            yield url


def mb(n_bytes: float) -> float:
    return n_bytes / MB
