"""Provenance over HTTP: the signing key (made once, also by two processes at once), receipts
verified with only the public key, lineage, erasure (and its races), the export ZIP."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import threading
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from safetensors.numpy import load
from sqlalchemy import text

from loraforge.bootstrap import build
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api
from tests.integration.work.conftest import Work
from tests.integration.work.test_weights import trained, working
from tests.ml_fakes import FakeTrainer
from tests.receipts import unstamped, verify_receipt

pytestmark = pytest.mark.xdist_group("provenance")


@pytest.fixture
def lora_work(api: Api) -> Work:
    return working(api, FakeTrainer(safetensors=True))


def _key_id(settings_json: str, barrier: Any, out: Any) -> None:
    container = build(Settings.model_validate_json(settings_json))
    try:
        barrier.wait(timeout=60)
        out.put(container.signing_keys.current().id)
    finally:
        container.close()


def test_two_processes_starting_at_once_end_with_one_key(settings: Settings) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_key_id, args=(settings.model_dump_json(), barrier, out))
        for _ in range(2)
    ]
    for p in processes:
        p.start()
    ids = [out.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    container = build(settings)
    try:
        assert ids[0] == ids[1] == container.signing_keys.current().id
        with container.uow.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM signing_keys")).scalar() == 1
    finally:
        container.close()


def _get(work: Work, url: str, **kwargs: Any) -> Any:
    return work.api.client.get(url, headers=work.api.headers, **kwargs)


def _mix(model_id: str, training_id: str) -> dict[str, Any]:
    return {
        "prompt": "p",
        "scaleConfigs": {"1": {"scale": 1.0, "modelId": model_id, "trainingId": training_id}},
    }


def _training_url(model_id: str, training_id: str) -> str:
    return f"/v1/models/{model_id}/trainings/{training_id}"


def test_a_receipt_verifies_with_only_the_public_key(lora_work: Work) -> None:
    model_id, training_id = trained(lora_work)
    url = _training_url(model_id, training_id)
    document = _get(lora_work, f"{url}/receipt").json()
    key = lora_work.api.client.get("/v1/signing-key")  # no API key needed
    assert key.status_code == 200
    verify_receipt(document, key.json()["jwk"])
    receipt = document["receipt"]
    manifest = _get(lora_work, url).json()["manifest"]
    assert receipt["trainingId"] == training_id
    assert receipt["baseModel"]["id"] == "tiny"
    assert len(receipt["baseModel"]["sha256"]) == 64
    assert receipt["images"] == [
        {"sha256": i["sha256"], "caption": i["caption"]} for i in manifest["images"]
    ]
    assert receipt["hyperparameters"] == manifest["hyperparameters"]
    assert receipt["seed"] == manifest["hyperparameters"]["seed"]
    assert _get(lora_work, f"{url}/receipt").json() == document  # frozen
    # Every served file: its receipt hash in its metadata, and without it the hash listed.
    for listed in receipt["weights"]["files"]:
        query = {"format": listed["format"], "dtype": listed["dtype"]}
        served = _get(lora_work, f"{url}/weights", params=query).content
        without, receipt_sha256 = unstamped(served)
        assert receipt_sha256 == document["sha256"]
        assert hashlib.sha256(without).hexdigest() == listed["sha256"]
    assert len(receipt["weights"]["files"]) == 4
    # A forged receipt fails.
    forged = {**document, "receipt": {**receipt, "seed": receipt["seed"] + 1}}
    with pytest.raises(InvalidSignature):
        verify_receipt(forged, key.json()["jwk"])


def test_the_export_holds_everything_and_matches_the_receipt(lora_work: Work) -> None:
    model_id, training_id = trained(lora_work)
    url = _training_url(model_id, training_id)
    answer = _get(lora_work, f"{url}/export")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    kohya, diffusers = (f"{training_id}-{f}-fp16.safetensors" for f in ("kohya", "diffusers"))
    assert set(archive.namelist()) == {
        kohya,
        diffusers,
        "manifest.json",
        "receipt.json",
        "README.txt",
        "sample-sheet.png",
    }
    sheet = _get(lora_work, f"{url}/sample-sheet")
    assert sheet.status_code == 200
    assert archive.read("sample-sheet.png")[:8] == b"\x89PNG\r\n\x1a\n"
    document = _get(lora_work, f"{url}/receipt").json()
    assert json.loads(archive.read("receipt.json")) == document
    assert json.loads(archive.read("manifest.json")) == _get(lora_work, url).json()["manifest"]
    named = {
        (f["format"], f["dtype"]): f["sha256"] for f in document["receipt"]["weights"]["files"]
    }
    for name, weights_format in ((kohya, "kohya"), (diffusers, "diffusers")):
        without, receipt_sha256 = unstamped(archive.read(name))
        assert receipt_sha256 == document["sha256"]
        assert hashlib.sha256(without).hexdigest() == named[weights_format, "fp16"]
    tensors = load(archive.read(kohya))
    assert tensors
    assert all(k.startswith(("lora_unet_", "lora_te")) for k in tensors)
    assert all(str(t.dtype) == "float16" for k, t in tensors.items() if not k.endswith(".alpha"))
    readme = archive.read("README.txt").decode()
    assert all(word in readme for word in ("sks", kohya, "load_lora_weights"))


def test_erase_removes_what_it_must_and_nothing_more(lora_work: Work) -> None:
    model_id, training_id = trained(lora_work)
    client, headers = lora_work.api.client, lora_work.api.headers
    url = _training_url(model_id, training_id)
    manifest = _get(lora_work, url).json()["manifest"]
    erased_id, kept_id = manifest["images"][0]["id"], manifest["images"][1]["id"]
    container = lora_work.api.container
    who = container.keys.authenticate(lora_work.api.key)
    erased_image = container.images.get(who, erased_id)
    kept_image = container.images.get(who, kept_id)
    training = container.trainings.get(who, model_id, training_id)
    assert training.artifact_key is not None
    prediction = client.post(
        "/v1/predictions",
        json=_mix(model_id, training_id),
        headers=headers,
    )
    assert prediction.status_code == 201, prediction.text
    lineage = _get(lora_work, f"/v1/images/{erased_id}/lineage").json()
    assert [t["id"] for t in lineage["trainings"]] == [training_id]
    assert [p["id"] for p in lineage["predictions"]] == [prediction.json()["predictionId"]]
    receipt = _get(lora_work, f"{url}/receipt").json()
    checkpoints = _get(lora_work, f"{url}/checkpoints").json()
    samples = _get(lora_work, f"{url}/samples").json()
    assert checkpoints
    assert samples
    with container.uow() as uow:
        sheet_id = uow.training_outputs.sheet(training_id)
        assert sheet_id is not None
        artifact_keys = {c.blob_key for c in uow.training_outputs.checkpoints(training_id)}
        for image_id in [s["image"]["id"] for s in samples] + [sheet_id]:
            sample_image = uow.images.get_unscoped(image_id)
            assert sample_image is not None
            artifact_keys |= sample_image.blob_keys()

    answer = client.post(f"/v1/images/{erased_id}/erase", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["erasedTrainingIds"] == [training_id]
    for key in erased_image.blob_keys() | {training.artifact_key} | artifact_keys:
        assert not lora_work.has_blob(key), key  # samples, sheet, checkpoints included
    for key in kept_image.blob_keys():
        assert lora_work.has_blob(key), key  # the other image of the training stays
    assert _get(lora_work, f"/v1/images/{erased_id}").status_code == 404
    shown = _get(lora_work, url).json()
    assert shown["status"] == "succeeded"
    assert shown["erasedAt"] is not None
    step = checkpoints[0]["step"]
    for path in (
        "weights",
        "weights?format=kohya",
        f"weights?step={step}",
        "export",
        "samples",
        "checkpoints",
        "sample-sheet",
    ):
        gone = _get(lora_work, f"{url}/{path}")
        assert (gone.status_code, gone.json()["error"]["code"]) == (410, "erased"), path
    assert _get(lora_work, f"{url}/receipt").json() == receipt  # receipts stay
    again = client.post(
        "/v1/predictions",
        json=_mix(model_id, training_id),
        headers=headers,
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "training_erased")
    lora_work.run_jobs()  # the prediction queued before the erase fails, it loads nothing
    queued = _get(lora_work, f"/v1/predictions/{prediction.json()['predictionId']}").json()
    assert queued["status"] == "failed"
    assert "erased" in queued["error"]


def test_erase_of_a_queued_predictions_init_image(lora_work: Work) -> None:
    """The hold of a prediction not run yet does not keep an erased picture: its bytes go
    with the erase, and the prediction fails when it runs, saying why; the worker goes on."""
    model_id, training_id = trained(lora_work)
    client, headers = lora_work.api.client, lora_work.api.headers
    container = lora_work.api.container
    image_id = client.post(
        "/v1/images",
        params={"type": "auxiliaryType"},
        content=imagefactory.png(64, 48),
        headers={**headers, "Content-Type": "image/png"},
    ).json()["id"]
    image = container.images.get(container.keys.authenticate(lora_work.api.key), image_id)
    img2img = {**_mix(model_id, training_id), "init_image": image_id, "strength": 0.5}
    doomed = client.post("/v1/predictions", json=img2img, headers=headers)
    unrelated = client.post("/v1/predictions", json=_mix(model_id, training_id), headers=headers)
    assert (doomed.status_code, unrelated.status_code) == (201, 201)

    answer = client.post(f"/v1/images/{image_id}/erase", headers=headers)

    assert answer.status_code == 200, answer.text
    assert answer.json()["erasedTrainingIds"] == []  # no training used it
    for key in image.blob_keys():  # the display variant the prediction held included
        assert not lora_work.has_blob(key), key
    assert lora_work.run_jobs() == 2  # neither crashes the worker
    failed = _get(lora_work, f"/v1/predictions/{doomed.json()['predictionId']}").json()
    assert failed["status"] == "failed"
    assert "init_image" in failed["error"]
    assert "erased" in failed["error"]
    assert failed["init_image"] == image_id  # the echo stays
    ran = _get(lora_work, f"/v1/predictions/{unrelated.json()['predictionId']}").json()
    assert ran["status"] == "succeeded"
    again = client.post("/v1/predictions", json=img2img, headers=headers)
    assert (again.status_code, again.json()["error"]["field"]) == (404, "init_image")


def test_erase_racing_an_img2img_of_the_image(lora_work: Work) -> None:
    """Whatever the interleaving: the prediction is refused (404) or committed before the
    erase, which then takes its hold; either way the picture is gone once the erase answered,
    and an accepted prediction fails when it runs."""
    model_id, training_id = trained(lora_work)
    client, headers = lora_work.api.client, lora_work.api.headers
    container = lora_work.api.container
    who = container.keys.authenticate(lora_work.api.key)
    start = threading.Barrier(2)  # reused round after round
    results: dict[str, Any] = {}

    def call(name: str, url: str, body: Any) -> None:
        start.wait()
        results[name] = client.post(url, json=body, headers=headers)

    for n in range(4):
        image_id = client.post(
            "/v1/images",
            params={"type": "auxiliaryType"},
            content=imagefactory.png(60 + n, 48),
            headers={**headers, "Content-Type": "image/png"},
        ).json()["id"]
        keys = container.images.get(who, image_id).blob_keys()
        img2img = {**_mix(model_id, training_id), "init_image": image_id}
        results.clear()
        threads = [
            threading.Thread(target=call, args=("predict", "/v1/predictions", img2img)),
            threading.Thread(target=call, args=("erase", f"/v1/images/{image_id}/erase", None)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert results["erase"].status_code == 200, results["erase"].text
        assert not any(lora_work.has_blob(key) for key in keys)
        predicted = results["predict"]
        assert predicted.status_code in (201, 404), predicted.text
        lora_work.run_jobs()
        if predicted.status_code == 201:
            pid = predicted.json()["predictionId"]
            assert _get(lora_work, f"/v1/predictions/{pid}").json()["status"] == "failed"


def test_erase_racing_predictions_and_downloads(lora_work: Work) -> None:
    """Whatever the interleaving: a prediction accepted (201) was committed before the erase
    and is failed cleanly when it runs; a 2xx download has whole bytes; once the erase
    answered, no erased blob is left."""
    for _ in range(4):
        _race_once(lora_work)


def _race_once(work: Work) -> None:
    client, headers = work.api.client, work.api.headers
    model_id, training_id = trained(work)
    url = _training_url(model_id, training_id)
    image_id = _get(work, url).json()["manifest"]["images"][0]["id"]
    who = work.api.container.keys.authenticate(work.api.key)
    artifact = work.api.container.trainings.get(who, model_id, training_id).artifact_key
    assert artifact is not None
    expected = _get(work, f"{url}/weights").content
    results: dict[str, Any] = {}
    start = threading.Barrier(3)
    calls: dict[str, Callable[[], Any]] = {
        "predict": lambda: client.post(
            "/v1/predictions", json=_mix(model_id, training_id), headers=headers
        ),
        "download": lambda: _get(work, f"{url}/weights"),
        "erase": lambda: client.post(f"/v1/images/{image_id}/erase", headers=headers),
    }

    def call(name: str) -> None:
        start.wait()
        results[name] = calls[name]()

    threads = [threading.Thread(target=call, args=(name,)) for name in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["erase"].status_code == 200
    assert not work.has_blob(artifact)
    downloaded = results["download"]
    assert downloaded.status_code in (200, 410), downloaded.text
    if downloaded.status_code == 200:
        assert downloaded.content == expected
    predicted = results["predict"]
    assert predicted.status_code in (201, 409), predicted.text
    if predicted.status_code == 409:
        assert predicted.json()["error"]["code"] == "training_erased"
    work.run_jobs()
    if predicted.status_code == 201:
        pid = predicted.json()["predictionId"]
        assert _get(work, f"/v1/predictions/{pid}").json()["status"] == "failed"
    assert not work.has_blob(artifact)


def test_lineage_and_erase_of_another_accounts_image_are_404(lora_work: Work) -> None:
    model_id, training_id = trained(lora_work)
    image_id = _get(lora_work, _training_url(model_id, training_id)).json()["manifest"]["images"][
        0
    ]["id"]
    other = lora_work.api.new_account()
    assert (
        lora_work.api.client.get(f"/v1/images/{image_id}/lineage", headers=other).status_code == 404
    )
    assert (
        lora_work.api.client.post(f"/v1/images/{image_id}/erase", headers=other).status_code == 404
    )
