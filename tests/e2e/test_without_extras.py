"""``pip install loraforge`` without extras: the real commands, in processes where torch,
diffusers, peft, transformers, celery, boto3 … cannot be imported (``tests/without_extras.py``).

``serve`` serves the API on SQLite, local blobs and the inline queue; a configured part whose
extra is missing stops a command with one line naming the extra, before it touches anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import imagefactory
from tests.e2e.servers import Server, free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[2]
EVERY_EXTRA = "ml,celery,s3"
TIMEOUT_S = 60.0


def _without(extras: str, module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.without_extras", extras, module, *args]


def _environment(**env: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")}
    return {**inherited, "LORAFORGE_LOG_LEVEL": "warning", **env}


def test_serve_without_any_extra_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        _without(EVERY_EXTRA, "loraforge", "serve", "--data-dir", str(tmp_path / "data")),
        env=_environment(LORAFORGE_PORT=str(port)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    server = Server(
        process=process, base_url=f"http://127.0.0.1:{port}", data_dir=tmp_path / "data"
    )
    try:
        wait_until_up(server)
        jpeg = imagefactory.jpeg(120, 80, exif_orientation=1)
        auth = {"Authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=10.0) as api:
            assert api.get("/readyz").json()["status"] == "ok"
            model_id = api.post("/v1/models", json={"displayName": "m"}).json()["id"]
            uploaded = api.post(
                "/v1/images",
                files={"file": ("dress.jpg", jpeg, "image/jpeg")},
                data={"data": json.dumps({"modelID": model_id, "type": "modelInput"})},
            )
            assert uploaded.status_code == 201, uploaded.text
            image = uploaded.json()
            listed = api.get(f"/v1/models/{model_id}/images").json()
            assert [i["id"] for i in listed["items"]] == [image["id"]]
            assert httpx.get(image["url"], timeout=10.0).content == jpeg  # signed, no key
            assert [m["name"] for m in api.get("/v1/base-models").json()] == ["tiny"]
            training = api.post(f"/v1/models/{model_id}/trainings", json={})
            assert training.status_code == 501, training.text
            assert training.json()["error"]["code"] == "ml_unavailable"
    finally:
        code, err = server.stop()
    assert code in (0, -signal.SIGTERM), err  # uvicorn re-raises SIGTERM after its shutdown
    assert "Traceback" not in err
    notes = [line for line in err.splitlines() if "pip install" in line]
    assert notes == [
        "no workers: Running trainings and predictions needs the 'ml' extra: "
        "pip install 'loraforge[ml]' (until then: 501 ml_unavailable)"
    ]


@pytest.mark.parametrize(
    ("extras", "env", "command", "line"),
    [
        (
            "celery",
            {"LORAFORGE_QUEUE": "celery"},
            ("loraforge", "serve"),
            "LORAFORGE_QUEUE=celery needs the 'celery' extra: pip install 'loraforge[celery]'",
        ),
        (
            "s3",
            {"LORAFORGE_BLOB_STORE": "s3", "LORAFORGE_S3_BUCKET": "b"},
            ("loraforge", "keys", "create", "--name", "ci"),
            "LORAFORGE_BLOB_STORE=s3 needs the 's3' extra: pip install 'loraforge[s3]'",
        ),
        (
            EVERY_EXTRA,
            {},
            ("loraforge", "worker"),
            "The worker (it trains and predicts) needs the 'ml' extra: pip install 'loraforge[ml]'",
        ),
        (
            "ml",
            {"LORAFORGE_CAPTIONING_MODEL_DIR": "/models/blip"},
            ("loraforge", "db", "upgrade"),
            "LORAFORGE_CAPTIONING_MODEL_DIR needs the 'ml' extra: pip install 'loraforge[ml]'",
        ),
    ],
)
def test_a_configured_part_without_its_extra_stops_a_command_with_one_line(
    tmp_path: Path, extras: str, env: dict[str, str], command: tuple[str, ...], line: str
) -> None:
    data = tmp_path / "data"
    done = subprocess.run(
        _without(extras, *command, "--data-dir", str(data)),
        env=_environment(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert (done.returncode, done.stderr, done.stdout) == (2, f"error: {line}\n", "")
    assert not data.exists()  # refused before migrations, keys or anything else


def test_the_asgi_app_without_its_extra_stops_uvicorn_with_one_line(tmp_path: Path) -> None:
    env = {"LORAFORGE_QUEUE": "celery", "LORAFORGE_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        _without("celery", "uvicorn", "loraforge.asgi:app", "--port", str(free_port())),
        env=_environment(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    line = "LORAFORGE_QUEUE=celery needs the 'celery' extra: pip install 'loraforge[celery]'"
    assert (done.returncode, done.stderr) == (1, f"error: {line}\n")
    assert not (tmp_path / "data").exists()
