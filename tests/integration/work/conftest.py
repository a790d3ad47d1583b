from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from loraforge.bootstrap import build_worker
from loraforge.domain.errors import NotFound
from loraforge.services.worker import Worker
from tests import imagefactory
from tests.conftest import Api
from tests.ml_fakes import FakeGenerator, FakeTrainer


@dataclass
class Work:
    api: Api
    worker: Worker
    trainer: FakeTrainer
    generator: FakeGenerator

    def model_with_images(self, count: int = 3, **fields: Any) -> str:
        client, headers = self.api.client, self.api.headers
        model_id: str = client.post(
            "/v1/models", json={"displayName": "m", **fields}, headers=headers
        ).json()["id"]
        for n in range(count):
            body = imagefactory.png(48 + n, 40)
            answer = client.post(f"/v1/models/{model_id}/data", content=body, headers=headers)
            assert answer.status_code == 201, answer.text
        return model_id

    def train(self, model_id: str, **body: Any) -> str:
        answer = self.api.client.post(
            f"/v1/models/{model_id}/trainings",
            json={"trainingStrength": 0, "trainingSpeed": "fast", **body},
            headers=self.api.headers,
        )
        assert answer.status_code == 201, answer.text
        training_id: str = answer.json()["trainingId"]
        return training_id

    def run_jobs(self) -> int:
        ran = 0
        while self.worker.run_once():
            ran += 1
        return ran

    def has_blob(self, key: str) -> bool:
        """Whether the blob store holds ``key``."""
        try:
            self.api.container.blobs.size(key)
        except NotFound:
            return False
        return True

    def training(self, model_id: str, training_id: str) -> dict[str, Any]:
        answer = self.api.client.get(
            f"/v1/models/{model_id}/trainings/{training_id}", headers=self.api.headers
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture
def work(api: Api) -> Work:
    trainer, generator = FakeTrainer(), FakeGenerator()
    worker = build_worker(api.container, trainer=trainer, generator=generator, owner="test")
    return Work(api=api, worker=worker, trainer=trainer, generator=generator)
