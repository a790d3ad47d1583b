"""`loraforge serve` as shipped: its supervised worker trains and predicts on the tiny model.

The worker is killed with SIGKILL mid-training; the supervisor restarts it, the new attempt
takes the job over once the lease expires and resumes from the last checkpoint. Both queues:
``inline`` (workers poll the database) and ``celery`` (Redis; the killed worker's message is
unacknowledged, so the new worker's requeue timer hands the job back).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from safetensors.numpy import load

from loraforge.adapters.ml.lora_files import read_metadata
from tests import imagefactory
from tests.e2e.servers import Server, serving
from tests.redis_server import redis_url

FLOW_TIMEOUT_S = 240.0


def _queue_env(queue: str) -> dict[str, str]:
    if queue == "inline":
        return {"LORAFORGE_QUEUE": "inline"}
    return {
        "LORAFORGE_QUEUE": "celery",
        "LORAFORGE_REDIS_URL": redis_url(),
        "LORAFORGE_CELERY_QUEUE": f"lf-e2e-{uuid.uuid4().hex[:12]}",
        "LORAFORGE_JOB_REQUEUE_S": "1",
    }


@pytest.fixture(params=["inline", "celery"])
def trainer_server(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> Iterator[Server]:
    with serving(
        tmp_path / "data",
        database_url,
        **_queue_env(request.param),
        LORAFORGE_WORKERS="1",
        LORAFORGE_JOB_LEASE_S="4",
        LORAFORGE_JOB_HEARTBEAT_S="0.5",
        LORAFORGE_WORKER_POLL_S="0.2",
    ) as running:
        yield running


def _poll(client: httpx.Client, url: str, done: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + FLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(url).json()
        if done(body):
            return body
        time.sleep(0.2)  # polling the public API, as a client would
    pytest.fail(f"{what} did not happen within {FLOW_TIMEOUT_S} s")


def _worker_pids(server: Server) -> list[int]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [c.pid for c in children if "worker" in " ".join(c.cmdline())]


def test_train_kill_worker_resume_then_predict(trainer_server: Server) -> None:
    headers = {"Authorization": f"Bearer {trainer_server.key}"}
    with httpx.Client(base_url=trainer_server.base_url, headers=headers, timeout=30) as client:
        model_id = client.post("/v1/models", json={"displayName": "stripes"}).json()["id"]
        for n in range(4):
            body = imagefactory.png(96 + 8 * n, 96)
            assert client.post(f"/v1/models/{model_id}/data", content=body).status_code == 201
        training_id = client.post(
            f"/v1/models/{model_id}/trainings", json={"trainingSpeed": "fast"}
        ).json()["trainingId"]
        url = f"/v1/models/{model_id}/trainings/{training_id}"
        checkpoint = client.get(url).json()["manifest"]["hyperparameters"]["checkpoint_every"]
        _poll(client, url, lambda b: b["progress"]["step"] > checkpoint, "a checkpoint")
        (worker,) = _worker_pids(trainer_server)
        os.kill(worker, signal.SIGKILL)
        done = _poll(
            client,
            url,
            lambda b: b["status"] != "processing" and b["status"] != "queued",
            "the end of the training",
        )
        assert done["status"] == "succeeded", done
        assert _worker_pids(trainer_server) != [worker]  # the supervisor started another
        weights = client.get(f"{url}/weights")
        assert weights.status_code == 200
        assert len(weights.content) > 1000
        assert read_metadata(weights.content)["loraforge.training_id"] == training_id
        kohya = client.get(f"{url}/weights", params={"format": "kohya", "dtype": "fp16"})
        assert kohya.status_code == 200
        tensors = load(kohya.content)
        assert all(k.startswith("lora_unet_") for k in tensors)
        assert {t.dtype for t in tensors.values()} == {np.dtype(np.float16)}
        assert read_metadata(kohya.content)["modelspec.trigger_phrase"] == done["triggerWord"]

        prediction_id = client.post(
            "/v1/predictions",
            json={
                "scaleConfigs": {
                    "1": {"scale": 1.0, "modelId": model_id, "trainingId": training_id}
                },
                "prompt": f"a photo of {done['triggerWord']}",
                "seed": 7,
                "num_inference_steps": 4,
            },
        ).json()["predictionId"]
        result = _poll(
            client,
            f"/v1/predictions/{prediction_id}",
            lambda b: b["status"] in ("succeeded", "failed"),
            "the prediction",
        )
        assert result["status"] == "succeeded", result
        image = httpx.get(result["outputImages"][0])
        assert image.status_code == 200
        assert image.content.startswith(b"\x89PNG")
