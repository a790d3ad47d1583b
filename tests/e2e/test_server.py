"""The real thing: ``loraforge serve`` in its own process, spoken to over HTTP with httpx."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import imagefactory
from tests.e2e.servers import Server, serving


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    # No job workers: this test is about images over HTTP.
    with serving(tmp_path / "data", database_url, LORAFORGE_WORKERS="0") as running:
        yield running


def test_images_round_trip_through_a_real_server(server: Server) -> None:
    key = server.key
    assert key.startswith("lf_")
    assert (server.data_dir / "dev-api-key").stat().st_mode & 0o077 == 0  # private file
    jpeg = imagefactory.jpeg(120, 80, exif_orientation=1)

    with httpx.Client(base_url=server.base_url, timeout=10.0) as api:
        auth = {"Authorization": f"Bearer {key}"}
        assert api.get("/readyz").json()["status"] == "ok"
        assert api.get("/v1/models").status_code == 401

        made = api.post("/v1/models", json={"displayName": "E2E dresses"}, headers=auth)
        assert made.status_code == 201, made.text
        model_id = made.json()["id"]

        uploaded = api.post(
            "/v1/images",
            files={"file": ("dress.jpg", jpeg, "image/jpeg")},
            data={"data": json.dumps({"modelID": model_id, "type": "modelInput"})},
            headers=auth,
        )
        assert uploaded.status_code == 201, uploaded.text
        image = uploaded.json()
        assert (image["width"], image["height"], image["format"]) == (120, 80, "jpeg")
        assert image["name"] == "dress.jpg"
        assert image["modelId"] == model_id

        listed = api.get(f"/v1/models/{model_id}/images", headers=auth)
        assert listed.status_code == 200
        assert [i["id"] for i in listed.json()["items"]] == [image["id"]]

    # The signed link works with no headers at all, from a client that has no key.
    assert image["url"].startswith(server.base_url)
    original = httpx.get(image["url"], timeout=10.0)
    assert original.status_code == 200
    assert original.content == jpeg
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["x-content-type-options"] == "nosniff"
    thumbnail = httpx.get(image["thumbnailUrl"], timeout=10.0)
    assert thumbnail.status_code == 200
    assert thumbnail.content[:2] in (b"\xff\xd8", b"RI", b"\x89P")  # an encoded image
    tampered = httpx.get(image["url"].replace("variant=original", "variant=display"))
    assert tampered.status_code == 403

    with httpx.Client(base_url=server.base_url, timeout=10.0) as api:
        auth = {"Authorization": f"Bearer {key}"}
        assert api.delete(f"/v1/images/{image['id']}", headers=auth).status_code == 204
        assert api.get(f"/v1/images/{image['id']}", headers=auth).status_code == 404
        assert api.get(f"/v1/models/{model_id}/images", headers=auth).json()["items"] == []
    assert httpx.get(image["url"], timeout=10.0).status_code == 404
    assert list((server.data_dir / "blobs").glob("??/??/*")) == []

    code, stderr = server.stop()
    assert code in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr, stderr
