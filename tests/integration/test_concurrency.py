"""Count limits and write locks under real concurrency, on SQLite and on PostgreSQL.

Uploads start together (a barrier) through the real HTTP app or the real ImageService; the
outcome must be exactly as many successes as there are places, clean refusals for the rest,
no 5xx, and no blob file that no row references.
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import ImageRow
from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.domain.entities import ALL_FORMATS, ImageKind, Principal
from loraforge.domain.errors import LimitReached
from loraforge.services.images import Upload
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api

T = TypeVar("T")


def all_at_once(tasks: list[Callable[[], T]]) -> list[T]:
    """Run every task in its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(tasks), timeout=30)

    def run(task: Callable[[], T]) -> T:
        barrier.wait()
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(run, task) for task in tasks]
        return [f.result(timeout=120) for f in futures]


def distinct_jpegs(n: int) -> list[bytes]:
    images = [imagefactory.jpeg(24 + i, 16 + i % 7) for i in range(n)]
    assert len(set(images)) == n
    return images


def blob_files(settings: Settings) -> set[str]:
    root = settings.data_dir / "blobs"
    return {p.name for p in root.glob("??/??/*") if p.is_file()}


def temp_files(settings: Settings) -> list[Path]:
    return list((settings.data_dir / "blobs" / "tmp").iterdir())


def image_rows(container: Container) -> list[ImageRow]:
    with Session(container.uow.engine) as session:
        return list(session.scalars(select(ImageRow)))


def assert_blobs_match_rows(container: Container) -> None:
    """Every stored blob is referenced by a row, and every row's blobs exist."""
    referenced: set[str] = set()
    for row in image_rows(container):
        referenced |= {row.original_key, row.display_key, row.thumbnail_key}
    assert blob_files(container.settings) == referenced
    assert temp_files(container.settings) == []


def create_model(api: Api, name: str = "Concurrent") -> str:
    created = api.client.post("/v1/models", json={"displayName": name}, headers=api.headers)
    assert created.status_code == 201, created.text
    model_id: str = created.json()["id"]
    return model_id


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


def answer(response: Any) -> Answer:
    return Answer(response.status_code, response.json() if response.content else None)


# --- the real default: 21 at once against an empty model of 20 places --------------------


def test_21_simultaneous_uploads_fill_exactly_20_places(api: Api) -> None:
    assert api.container.limits.max_images_per_type == 20  # the real default
    model_id = create_model(api)
    url = f"/v1/models/{model_id}/data"

    def upload(data: bytes) -> Callable[[], Answer]:
        return lambda: answer(api.client.post(url, content=data, headers=api.headers))

    answers = all_at_once([upload(data) for data in distinct_jpegs(21)])

    assert Counter(a.status for a in answers) == {201: 20, 409: 1}, answers
    (refused,) = [a for a in answers if a.status == 409]
    assert refused.body["error"]["code"] == "limit_reached"
    listed = api.client.get(url, headers=api.headers)
    assert listed.status_code == 200
    assert len(listed.json()) == 20
    assert {a.body["dataId"] for a in answers if a.status == 201} == {
        item["dataId"] for item in listed.json()
    }
    assert_blobs_match_rows(api.container)


def test_multipart_uploads_racing_for_the_last_places(api: Api) -> None:
    model_id = create_model(api)
    first, racers = distinct_jpegs(18), distinct_jpegs(23)[18:]
    for data in first:
        done = api.client.post(
            "/v1/images",
            params={"modelId": model_id, "type": "modelInput"},
            content=data,
            headers=api.headers,
        )
        assert done.status_code == 201, done.text

    def upload(i: int, data: bytes) -> Callable[[], Answer]:
        files = {"file": (f"racer-{i}.jpg", data, "image/jpeg")}
        form = {"data": f'{{"modelID": "{model_id}", "type": "modelInput"}}'}
        return lambda: answer(
            api.client.post("/v1/images", files=files, data=form, headers=api.headers)
        )

    answers = all_at_once([upload(i, d) for i, d in enumerate(racers)])
    assert Counter(a.status for a in answers) == {201: 2, 409: 3}, answers
    assert all(a.body["error"]["code"] == "limit_reached" for a in answers if a.status == 409)
    assert len(image_rows(api.container)) == 20
    assert_blobs_match_rows(api.container)


# --- the service with its real adapters, small limits ----------------------------------


@pytest.fixture
def small_limit_container(settings: Settings) -> Iterator[Container]:
    built = build(settings.model_copy(update={"max_images_per_type": 3}))
    yield built
    built.close()


def test_each_kind_has_its_own_limit_under_concurrency(small_limit_container: Container) -> None:
    c = small_limit_container
    issued = c.keys.create(name="racer")
    who = Principal(account_id=issued.key.account_id, key_id=issued.key.id)
    model = c.models.create(who, display_name="Kinds")
    jobs: list[tuple[ImageKind, bytes]] = [
        (kind, data)
        for kind, datas in (
            (ImageKind.TRAINING, distinct_jpegs(5)),
            (ImageKind.REFERENCE, distinct_jpegs(10)[5:]),
        )
        for data in datas
    ]

    def ingest(kind: ImageKind, data: bytes) -> Callable[[], str]:
        def go() -> str:
            try:
                c.images.ingest(
                    who,
                    Upload(stream=io.BytesIO(data)),
                    kind=kind,
                    model_id=model.id,
                    allowed=ALL_FORMATS,
                )
            except LimitReached:
                return f"{kind}:limit"
            return f"{kind}:ok"

        return go

    outcomes = Counter(all_at_once([ingest(kind, data) for kind, data in jobs]))
    assert outcomes == {
        "training:ok": 3,
        "training:limit": 2,
        "reference:ok": 3,
        "reference:limit": 2,
    }
    assert_blobs_match_rows(c)


def test_identical_bytes_racing_keep_their_shared_blobs(small_limit_container: Container) -> None:
    c = small_limit_container
    issued = c.keys.create(name="racer")
    who = Principal(account_id=issued.key.account_id, key_id=issued.key.id)
    model = c.models.create(who, display_name="Same bytes")
    data = imagefactory.jpeg(40, 30)

    def ingest() -> str:
        try:
            c.images.ingest(
                who,
                Upload(stream=io.BytesIO(data)),
                kind=ImageKind.TRAINING,
                model_id=model.id,
                allowed=ALL_FORMATS,
            )
        except LimitReached:
            return "limit"
        return "ok"

    assert Counter(all_at_once([ingest] * 5)) == {"ok": 3, "limit": 2}
    rows = image_rows(c)
    assert len({(r.original_key, r.display_key, r.thumbnail_key) for r in rows}) == 1
    assert_blobs_match_rows(c)  # the refused uploads removed nothing the others use
    for row in image_rows(c):
        assert c.images.read_original(c.images.get(who, row.id)) == data


# --- many writers at once: SQLite must queue them, never answer "database is locked" -----


def test_concurrent_writers_never_see_database_is_locked(api: Api) -> None:
    threads = 8
    jpegs = distinct_jpegs(threads * 2)
    c, h = api.client, api.headers

    def writer(n: int) -> Callable[[], list[Answer]]:
        def go() -> list[Answer]:
            """Five writes: create, upload, rename, upload, delete."""
            made = answer(c.post("/v1/models", json={"displayName": f"m{n}"}, headers=h))
            model = made.body["id"] if made.status == 201 else "missing"
            data_url = f"/v1/models/{model}/data"
            added = answer(c.post(data_url, content=jpegs[2 * n], headers=h))
            rename = {"updatedDisplayName": f"renamed {n}"}
            renamed = answer(c.put(f"/v1/models/{model}", json=rename, headers=h))
            again = answer(c.post(data_url, content=jpegs[2 * n + 1], headers=h))
            first_id = added.body["dataId"] if added.status == 201 else "missing"
            deleted = answer(c.delete(f"{data_url}/{first_id}", headers=h))
            return [made, added, renamed, again, deleted]

        return go

    results = all_at_once([writer(n) for n in range(threads)])
    statuses = Counter(step.status for steps in results for step in steps)
    assert statuses == {201: threads * 3, 200: threads, 204: threads}, results
    models = c.get("/v1/models", params={"pageSize": 100}, headers=h)
    assert models.json()["total"] == threads
    assert {m["displayName"] for m in models.json()["items"]} == {
        f"renamed {n}" for n in range(threads)
    }
    assert len(image_rows(api.container)) == threads
    assert_blobs_match_rows(api.container)


def test_writers_and_readers_on_separate_apps_share_the_database(settings: Settings) -> None:
    """Two app instances (as two server processes would be) writing the same database."""
    first, second = build(settings), build(settings)
    try:
        key = first.keys.create(name="shared").plaintext
        headers = {"Authorization": f"Bearer {key}"}
        with (
            TestClient(create_app(container=first)) as a,
            TestClient(create_app(container=second)) as b,
        ):

            def create(client: TestClient, n: int) -> Callable[[], int]:
                return lambda: (
                    client.post(
                        "/v1/models", json={"displayName": f"m{n}"}, headers=headers
                    ).status_code
                )

            tasks = [create(a if n % 2 else b, n) for n in range(16)]
            assert Counter(all_at_once(tasks)) == {201: 16}
            listed = a.get("/v1/models", params={"pageSize": 100}, headers=headers)
            assert listed.json()["total"] == 16
    finally:
        first.close()
        second.close()
