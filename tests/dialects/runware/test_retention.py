"""Runware uploads are deleted 30 days after their last use (seed 002), with an injected clock.

A use: the upload, a read (native GET, PhotoGPT GET), a fetch of a signed link, the image's
``imageUUID`` used in a task. The sweep is ``container.retention.sweep``, run by the server's
periodic loop next to the blob sweep.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api
from tests.dialects.photogpt.helpers import PREFIX, create_model, ok_result, upload
from tests.dialects.runware.helpers import PATH, bare, runware_image_count, upload_task
from tests.fakes import FakeClock
from tests.integration.test_concurrency import assert_blobs_match_rows

DAY = 24 * 3600


@dataclass
class Clocked:
    api: Api
    clock: FakeClock

    @property
    def container(self) -> Container:
        return self.api.container

    def upload(self, width: int = 16) -> str:
        return self.upload_with_url(width)[0]

    def upload_with_url(self, width: int = 16) -> tuple[str, str]:
        """The answer's ``imageUUID`` and ``imageURL``."""
        task = upload_task(bare(imagefactory.png(width, 16)))
        answer = self.api.client.post(PATH, json=[task], headers=self.api.headers)
        assert answer.status_code == 200, answer.text
        item = answer.json()["data"][0]
        return item["imageUUID"], item["imageURL"]

    def exists(self, image_id: str) -> bool:
        """Checked through the database, so that checking is not itself a use."""
        with self.container.uow() as uow:
            return uow.images.get_unscoped(image_id) is not None

    def sweep_after(self, days: float) -> dict[str, int]:
        self.clock.advance(days * DAY)
        return self.container.retention.sweep().deleted


def clocked_api(settings: Settings, **changes: object) -> Iterator[Clocked]:
    clock = FakeClock()
    container = build(settings.model_copy(update=changes), clock=clock)
    try:
        with TestClient(create_app(container=container)) as client:
            key = container.keys.create(name="r").plaintext
            yield Clocked(Api(client, container, key), clock)
    finally:
        container.close()


@pytest.fixture
def clocked(settings: Settings) -> Iterator[Clocked]:
    yield from clocked_api(settings)


def test_an_unused_upload_goes_after_30_days_and_not_before(clocked: Clocked) -> None:
    assert clocked.container.settings.runware_retention_days == 30  # the seed's period
    kept = clocked.upload()
    model_id = create_model(clocked.api.client, clocked.api.key)
    photogpt = ok_result(
        upload(clocked.api.client, clocked.api.key, model_id, imagefactory.jpeg(9, 9))
    )

    assert clocked.sweep_after(29.9) == {"runware": 0}
    assert clocked.exists(kept)

    assert clocked.sweep_after(0.2) == {"runware": 1}
    assert not clocked.exists(kept)
    assert clocked.exists(photogpt["id"])  # other origins have no such rule
    assert runware_image_count(clocked.container) == 0
    assert_blobs_match_rows(clocked.container)  # its bytes went with it


@pytest.fixture
def long_links(settings: Settings) -> Iterator[Clocked]:
    """Signed links that outlive the test's jumps in time (the default lives an hour)."""
    yield from clocked_api(settings, signed_url_ttl_s=90 * DAY)


def test_every_kind_of_use_restarts_the_30_days(long_links: Clocked) -> None:
    clocked = long_links
    api, h = clocked.api, clocked.api.headers
    by_link, link = clocked.upload_with_url(9)
    by_native, by_photogpt, by_task, unused = (clocked.upload(10 + i) for i in range(4))

    clocked.clock.advance(21 * DAY)
    assert api.client.get(link).status_code == 200  # the upload answer's imageURL, no headers
    read = api.client.get(f"/v1/images/{by_native}", headers=h).json()
    assert read["lastUsedAt"] == clocked.clock.now().isoformat().replace("+00:00", "Z")
    assert api.client.get(f"{PREFIX}/images/{by_photogpt}", headers=h).status_code == 200
    reuse = api.client.post(PATH, json=[upload_task(by_task)], headers=h)
    assert reuse.json()["data"][0]["imageUUID"] == by_task

    assert clocked.sweep_after(9.5) == {"runware": 1}  # day 30.5: only the unused one
    assert not clocked.exists(unused)
    assert all(clocked.exists(i) for i in (by_link, by_native, by_photogpt, by_task))
    assert clocked.sweep_after(20) == {"runware": 0}  # day 50.5: 29.5 days after the uses
    assert clocked.sweep_after(1) == {"runware": 4}  # day 51.5
    assert runware_image_count(clocked.container) == 0


def test_a_use_during_the_sweep_keeps_the_image(clocked: Clocked) -> None:
    image_id = clocked.upload()
    clocked.clock.advance(31 * DAY)
    cutoff = clocked.clock.now() - timedelta(days=30)
    with clocked.container.uow() as uow:
        (candidate,) = uow.images.list_unused("runware", before=cutoff, limit=10)
    assert candidate.id == image_id
    clocked.api.client.get(f"/v1/images/{image_id}", headers=clocked.api.headers)  # used now

    deleted = clocked.container.images.expire_unused("runware", before=cutoff, limit=10)

    assert deleted == 0
    assert clocked.exists(image_id)


def test_the_period_is_a_setting(settings: Settings) -> None:
    for short in clocked_api(settings, runware_retention_days=2):
        image_id = short.upload()
        assert short.sweep_after(1.9) == {"runware": 0}
        assert short.sweep_after(0.2) == {"runware": 1}
        assert not short.exists(image_id)
    for forever in clocked_api(settings, runware_retention_days=0):
        image_id = forever.upload()
        assert forever.sweep_after(3650) == {}
        assert forever.exists(image_id)


def test_the_server_loop_runs_the_sweep(settings: Settings) -> None:
    for live in clocked_api(settings, blob_sweep_interval_s=1):
        image_id = live.upload()
        live.clock.advance(31 * DAY)
        deadline = time.monotonic() + 10
        while live.exists(image_id):
            assert time.monotonic() < deadline, "the periodic loop did not delete the image"
            time.sleep(0.05)


def test_task_ids_are_forgotten_30_days_after_their_first_use(long_links: Clocked) -> None:
    clocked = long_links
    api = clocked.api
    task = upload_task(bare(imagefactory.png(12, 12)))
    first = api.client.post(PATH, json=[task], headers=api.headers).json()["data"][0]

    clocked.clock.advance(29 * DAY)
    replay = api.client.post(PATH, json=[task], headers=api.headers).json()["data"][0]
    assert replay["imageUUID"] == first["imageUUID"]  # a retry still gets the first answer
    assert clocked.container.retention.sweep().forgotten == {"runware": 0}

    clocked.clock.advance(1.5 * DAY)  # the image was used on day 29; its task id is 30.5 days old
    report = clocked.container.retention.sweep()
    assert report.deleted == {"runware": 0}
    assert report.forgotten == {"runware": 1}
    assert clocked.exists(first["imageUUID"])
    again = api.client.post(PATH, json=[task], headers=api.headers).json()["data"][0]
    assert again["imageUUID"] != first["imageUUID"]  # the id is free: a new upload
