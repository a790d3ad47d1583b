"""Faults while an archive is stored: it is one write, so a failure leaves nothing of it.

The entries of an archive are decoded and their blobs stored one after another, then committed
in one transaction. A full disk half-way through, or a commit that fails, must answer 507/503
with no row of the archive and no blob it created (those an earlier upload shares are kept).
"""

from __future__ import annotations

from typing import BinaryIO

import pytest

from loraforge.bootstrap import archive_limits
from loraforge.domain.entities import StoredBlob
from loraforge.domain.errors import InsufficientStorage
from loraforge.services.training_archives import TrainingArchives
from tests.conftest import Api
from tests.integration.api.test_model_data import add_data, create_model
from tests.integration.api.test_model_data_archive import jpeg, listed, post_archive
from tests.integration.test_durability import (
    blob_files,
    failing_image_service,
    referenced_keys,
    temp_files,
)
from tests.zips import make_zip

ARCHIVE = [("a.jpg", jpeg(1)), ("a.txt", b"first"), ("b.jpg", jpeg(2)), ("c.jpg", jpeg(3))]


def test_a_full_disk_half_way_through_leaves_nothing_of_the_archive(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = api.container
    model_id = create_model(api)
    add_data(api, model_id, jpeg(1))  # a.jpg's original is this upload's too: it stays
    before = set(blob_files(c.settings))
    real_put = c.blobs.put_file
    puts: list[str] = []

    def put_file(source: BinaryIO) -> StoredBlob:
        # Each image stores three blobs (original, display, thumbnail): the seventh is c.jpg's
        # original, when a.jpg and b.jpg are stored.
        if len(puts) == 6:
            raise InsufficientStorage("No space left for the blob store.")
        puts.append("stored")
        return real_put(source)

    monkeypatch.setattr(c.blobs, "put_file", put_file)
    response = post_archive(api, model_id, make_zip(ARCHIVE))

    assert response.status_code == 507, response.text
    assert len(puts) == 6
    assert response.json()["error"]["code"] == "insufficient_storage"
    assert len(listed(api, model_id)) == 1
    assert set(blob_files(c.settings)) == before == referenced_keys(c)
    assert temp_files(c.settings) == []

    monkeypatch.undo()  # space comes back: the same archive now goes in
    again = post_archive(api, model_id, make_zip(ARCHIVE))
    assert again.status_code == 201, again.text
    assert again.json()["totals"]["created"] == 3
    assert set(blob_files(c.settings)) == referenced_keys(c)


def test_a_failed_commit_leaves_nothing_of_the_archive(api: Api) -> None:
    c = api.container
    model_id = create_model(api)
    add_data(api, model_id, jpeg(1))
    before = set(blob_files(c.settings))

    real = c.training_archives
    failing_images, failing = failing_image_service(c)
    c.training_archives = TrainingArchives(
        images=failing_images, dataset=c.dataset, blobs=c.blobs, limits=archive_limits(c.settings)
    )
    try:
        response = post_archive(api, model_id, make_zip(ARCHIVE))
    finally:
        c.training_archives = real
        failing_images.close()

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert failing.failed == 1  # one transaction for the whole archive
    assert len(listed(api, model_id)) == 1
    assert set(blob_files(c.settings)) == before == referenced_keys(c)
    assert temp_files(c.settings) == []
