"""An unusable blob folder answers 503 with Retry-After on every surface, never 500.

The folder replaced by a file, not mounted, read-only, not ours (permission denied) or failing
(I/O errors) -- see tests/blob_faults.py for how each is made. Uploads in every wire format
(native, PhotoGPT, Runware over HTTP and WebSocket, Scenario) and content reads answer 503
with ``Retry-After`` in that format's error shape (a read-only folder still serves what it
holds), and everything works again once the folder does, without a restart. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests import imagefactory
from tests.blob_faults import MODES, READABLE, unusable
from tests.conftest import Api
from tests.dialects.photogpt.helpers import create_model as photogpt_model
from tests.dialects.photogpt.helpers import upload as photogpt_upload
from tests.dialects.runware.helpers import PATH as RUNWARE
from tests.dialects.runware.helpers import bare, upload_task

SCENARIO = "/compat/scenario/v1"


def assert_503(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 503, (response.request.url, response.text)
    assert int(response.headers["Retry-After"]) >= 1
    body: dict[str, Any] = response.json()
    return body


def uploads(api: Api, model_id: str, photogpt_model_id: str) -> None:
    """One new image through every wire format: each answers 503 in its own shape."""
    h, jpeg = api.headers, imagefactory.jpeg(30, 20)
    c = api.client
    native = c.post(
        "/v1/images", params={"modelId": model_id, "type": "modelInput"}, content=jpeg, headers=h
    )
    assert assert_503(native)["error"]["code"] == "unavailable"
    data = c.post(f"/v1/models/{model_id}/data", content=jpeg, headers=h)
    assert assert_503(data)["error"]["code"] == "unavailable"

    photogpt = assert_503(photogpt_upload(c, api.key, photogpt_model_id, jpeg))
    assert (photogpt["status"], photogpt["err"]) == ("NOK", "unavailable")

    task = upload_task(bare(imagefactory.png(20, 10)))
    runware = assert_503(c.post(RUNWARE, json=[task], headers=h))
    error = runware["errors"][0]
    assert (error["code"], error["taskUUID"]) == ("unavailable", task["taskUUID"])
    with c.websocket_connect(RUNWARE) as ws:
        ws.send_json([{"taskType": "authentication", "apiKey": api.key}])
        assert "data" in ws.receive_json()
        ws.send_json([task])
        frame = ws.receive_json()["errors"][0]
        assert (frame["code"], frame["taskUUID"]) == ("unavailable", task["taskUUID"])

    asset = {"image": base64.b64encode(jpeg).decode(), "name": "a.jpg"}
    scenario = c.post(f"{SCENARIO}/assets", json=asset, headers=h)
    assert assert_503(scenario)["apiError"] == "unavailable"
    assert scenario.headers["x-should-retry"] == "true"


def reads(api: Api, model_id: str, image: dict[str, Any], mode: str) -> None:
    """Stored bytes: the signed link every format hands out, the keyed content route and the
    base64 content of training data."""
    c, h = api.client, api.headers
    answers = [
        c.get(image["url"]),
        c.get(f"/v1/images/{image['id']}/content", params={"variant": "thumbnail"}, headers=h),
        c.get(f"/v1/models/{model_id}/data/{image['id']}", headers=h),
    ]
    for answer in answers:
        if mode in READABLE:
            assert answer.status_code == 200, (answer.request.url, answer.text)
        else:
            assert assert_503(answer)["error"]["code"] == "unavailable"


@pytest.mark.parametrize("mode", MODES)
def test_an_unusable_blob_folder_answers_503_everywhere_then_recovers(
    api: Api, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, h = api.client, api.headers
    model_id = c.post("/v1/models", json={"displayName": "Faults"}, headers=h).json()["id"]
    photogpt_model_id = photogpt_model(c, api.key)
    stored = c.post(
        "/v1/images",
        params={"modelId": model_id, "type": "modelInput"},
        content=imagefactory.jpeg(32, 24),
        headers=h,
    )
    assert stored.status_code == 201, stored.text
    image = stored.json()
    root: Path = api.container.settings.data_dir / "blobs"

    with unusable(root, mode, monkeypatch):
        assert assert_503(c.get("/readyz"))["error"]["code"] == "unavailable"
        uploads(api, model_id, photogpt_model_id)
        reads(api, model_id, image, mode)
        # The refused uploads left no row behind.
        listed = c.get(f"/v1/models/{model_id}/images", headers=h).json()
        assert [item["id"] for item in listed["items"]] == [image["id"]]

    assert c.get("/readyz").status_code == 200
    reads(api, model_id, image, "read-only")  # readable again
    again = c.post(
        "/v1/images",
        params={"modelId": model_id, "type": "modelInput"},
        content=imagefactory.jpeg(30, 20),
        headers=h,
    )
    assert again.status_code == 201, again.text
    assert c.get(again.json()["url"]).status_code == 200
