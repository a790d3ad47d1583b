"""The list-page phase of the ingest benchmark: seed the database with ``--images`` rows, then
time a model's image list page over HTTP, through the ASGI app in-process and at the service."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, func, insert, select, text

from benchmarks._harness import CpuWatch, Server, Summary, timed_calls, timed_gets
from benchmarks._ingest_common import Config, bench_settings, log
from benchmarks._ingest_results import ListResult
from benchmarks._ingest_server import api_headers
from loraforge.adapters.db.tables import Base, ImageRow
from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.domain.entities import ImageKind
from loraforge.http.image_types import KINDS_BY_FILTER
from loraforge.services.paging import page_request

PAGE_SIZE = 20


@dataclass(frozen=True)
class Seeded:
    model_id: str  # a typical model
    model_images: int
    big_model_id: str  # one model holding the remainder, for the deep-offset case
    big_model_images: int
    rows: int
    seconds: float


def seed(engine: Engine, config: Config) -> Seeded:
    """Models and image rows straight into the tables, up to ``config.total_images`` images.

    Rows are copies of a model and an image the benchmark made through the API (so every
    column, present or future, holds a real value), with new ids, names and times; every
    image points at the uploaded image's blobs. Typical models get 18 images (10 training,
    5 reference, 3 output); one model gets whatever is left.
    """
    started = time.perf_counter()
    images_t, models_t = Base.metadata.tables["images"], Base.metadata.tables["models"]
    with engine.connect() as conn:
        existing = conn.scalar(select(func.count()).select_from(images_t)) or 0
        image = dict(
            conn.execute(select(images_t).where(images_t.c.model_id.is_not(None)).limit(1))
            .mappings()
            .one()
        )
        model = dict(
            conn.execute(select(models_t).where(models_t.c.id == image["model_id"]))
            .mappings()
            .one()
        )
    per_model = [ImageKind.TRAINING] * 10 + [ImageKind.REFERENCE] * 5 + [ImageKind.OUTPUT] * 3
    typical_models = config.models - 1
    big_images = config.total_images - existing - typical_models * len(per_model)
    if big_images < 0:
        raise ValueError("--images is too small for --models")
    start = datetime.now(UTC) - timedelta(days=60)
    model_ids = [str(uuid.uuid4()) for _ in range(config.models)]
    models = [
        {
            **model,
            "id": model_id,
            "display_name": f"seeded model {i}",
            "created_at": start + timedelta(seconds=i),
            "updated_at": start + timedelta(seconds=i),
            "deleted_at": None,
        }
        for i, model_id in enumerate(model_ids)
    ]

    def rows() -> Iterator[dict[str, Any]]:
        n = 0
        for index, model_id in enumerate(model_ids):
            kinds = per_model if index < typical_models else [ImageKind.OUTPUT] * big_images
            for kind in kinds:
                created = start + timedelta(seconds=10 * n)
                n += 1
                yield {
                    **image,
                    "id": str(uuid.uuid4()),
                    "model_id": model_id,
                    "kind": kind.value,
                    "name": f"seeded-{n}.jpg",
                    "created_at": created,
                    "last_used_at": created,
                }

    seeded = 0
    with engine.begin() as conn:
        conn.execute(insert(models_t), models)
    batch: list[dict[str, Any]] = []
    for row in rows():
        batch.append(row)
        if len(batch) == 10_000:
            with engine.begin() as conn:
                conn.execute(insert(images_t), batch)
            seeded += len(batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(images_t), batch)
        seeded += len(batch)
    if engine.dialect.name == "postgresql":
        # Autovacuum would analyse after this many inserts anyway; don't wait for it.
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return Seeded(
        model_id=model_ids[typical_models // 2],
        model_images=len(per_model),
        big_model_id=model_ids[-1],
        big_model_images=big_images,
        rows=seeded,
        seconds=time.perf_counter() - started,
    )


def listing(
    server: Server, key: str, data_dir: Path, url: str | None, config: Config
) -> ListResult:
    settings = bench_settings(data_dir, url)
    engine = create_engine(settings.resolved_database_url())
    try:
        log(f"list: seeding the database up to {config.total_images:,} images")
        seeded = seed(engine, config)
        with engine.connect() as conn:
            total = conn.scalar(select(func.count()).select_from(ImageRow)) or 0
    finally:
        engine.dispose()
    log(f"list: seeded {seeded.rows:,} rows in {seeded.seconds:.1f} s; {total:,} images in all")
    n = config.list_requests
    path = f"/v1/models/{seeded.model_id}/images?pageSize={PAGE_SIZE}"
    last_page = math.ceil(seeded.big_model_images / PAGE_SIZE)
    big_first = f"/v1/models/{seeded.big_model_id}/images?pageSize={PAGE_SIZE}"
    big_last = f"{big_first}&pageNum={last_page}"
    with httpx.Client(base_url=server.base_url, headers=api_headers(key), timeout=30) as client:
        body = client.get(path).json()
        if body["total"] != seeded.model_images:
            raise RuntimeError(f"list page: expected {seeded.model_images} images, got {body}")
        timed_gets(client, path, 50)  # warm-up
        log(f"list: {n} sequential requests over HTTP")
        with CpuWatch(server) as noise:
            http = timed_gets(client, path, n)
        healthz = timed_gets(client, "/healthz", n)
        big_first_s = timed_gets(client, big_first, n // 2)
        big_last_s = timed_gets(client, big_last, n // 2)
    log("list: in-process (ASGI app, service)")
    container = build(settings)
    try:
        asgi = asyncio.run(_asgi_gets(container, key, path, n))
        who = container.keys.authenticate(key)
        page = page_request(1, PAGE_SIZE, max_page_size=settings.max_page_size)
        kinds = KINDS_BY_FILTER["all"]

        def list_page() -> None:
            container.images.list_for_model(who, seeded.model_id, kinds=kinds, page=page)

        timed_calls(list_page, 50)
        service = timed_calls(list_page, n)
    finally:
        container.close()
    return ListResult(
        total_images=total,
        models=config.models,
        seeded_rows=seeded.rows,
        seed_s=seeded.seconds,
        model_images=seeded.model_images,
        http=Summary.of(http),
        other_cpu_cores=noise.other_cores,
        asgi_in_process=Summary.of(asgi),
        service=Summary.of(service),
        healthz_http=Summary.of(healthz),
        big_model_images=seeded.big_model_images,
        big_model_first_page_http=Summary.of(big_first_s),
        big_model_last_page_num=last_page,
        big_model_last_page_http=Summary.of(big_last_s),
    )


async def _asgi_gets(container: Container, key: str, path: str, n: int) -> list[float]:
    """The app in this process: routing, auth, DB, serialisation; no socket, no h11."""
    app = create_app(container=container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=api_headers(key)
    ) as client:
        latencies: list[float] = []
        for i in range(n + 50):
            started = time.perf_counter()
            response = await client.get(path)
            if i >= 50:  # the first 50 are warm-up
                latencies.append(time.perf_counter() - started)
            response.raise_for_status()
    return latencies
