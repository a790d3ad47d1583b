from __future__ import annotations

from tests import imagefactory
from tests.conftest import Api


def test_model_and_training_data_round_trip(api: Api) -> None:
    created = api.client.post("/v1/models", json={"displayName": "Dresses"}, headers=api.headers)
    assert created.status_code == 201
    model_id = created.json()["id"]
    jpeg = imagefactory.jpeg(64, 48)
    added = api.client.post(f"/v1/models/{model_id}/data", content=jpeg, headers=api.headers)
    assert added.status_code == 201, added.text
    data_id = added.json()["dataId"]
    got = api.client.get(f"/v1/models/{model_id}/data/{data_id}", headers=api.headers)
    assert got.status_code == 200
    assert got.json()["dataUrl"].startswith("data:image/jpeg;base64,")
