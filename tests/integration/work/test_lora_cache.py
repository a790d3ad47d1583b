"""Erasure reaches the workers' local LoRA copies (docs/api.md, "Erasure"): checked on disk in
the embedded server's work folder and in a second worker process's own (its own data dir, the
same database and blobs), and raced against a worker copying the weights, on SQLite and
PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from loraforge.adapters.storage.local import LocalBlobStore
from loraforge.bootstrap import Container, build, build_worker
from loraforge.services.worker import Worker
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api
from tests.integration.work.conftest import Work
from tests.integration.work.test_weights import trained
from tests.ml_fakes import FakeGenerator, FakeTrainer

pytestmark = pytest.mark.xdist_group("provenance")

RACE_ROUNDS = 5


@pytest.fixture
def work(api: Api) -> Work:
    trainer, generator = FakeTrainer(safetensors=True), FakeGenerator()
    worker = build_worker(api.container, trainer=trainer, generator=generator, owner="embedded")
    return Work(api=api, worker=worker, trainer=trainer, generator=generator)


def _cached(data_dir: Path) -> set[str]:
    """Every file under the work folder's LoRA cache (finished and partial copies)."""
    folder = data_dir / "work" / "loras"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _of(names: set[str], training_id: str) -> set[str]:
    return {n for n in names if n.startswith(f"{training_id}.")}


def _predict(work: Work, model_id: str, training_id: str) -> str:
    answer = work.api.client.post(
        "/v1/predictions",
        json={
            "prompt": "p",
            "scaleConfigs": {"1": {"scale": 1.0, "modelId": model_id, "trainingId": training_id}},
        },
        headers=work.api.headers,
    )
    assert answer.status_code == 201, answer.text
    prediction_id: str = answer.json()["predictionId"]
    return prediction_id


def _status(work: Work, prediction_id: str) -> str:
    answer = work.api.client.get(f"/v1/predictions/{prediction_id}", headers=work.api.headers)
    status: str = answer.json()["status"]
    return status


def _erase_first_image(work: Work, model_id: str, training_id: str) -> None:
    url = f"/v1/models/{model_id}/trainings/{training_id}"
    shown = work.api.client.get(url, headers=work.api.headers).json()
    image_id = shown["manifest"]["images"][0]["id"]
    answer = work.api.client.post(f"/v1/images/{image_id}/erase", headers=work.api.headers)
    assert answer.status_code == 200, answer.text
    assert training_id in answer.json()["erasedTrainingIds"]


def _trained_apart(work: Work) -> tuple[str, str]:
    """A training on images no other training here uses (``trained`` uploads the same ones)."""
    client, headers = work.api.client, work.api.headers
    model_id: str = client.post(
        "/v1/models", json={"displayName": "apart"}, headers=headers
    ).json()["id"]
    for n in range(2):
        body = imagefactory.png(64 + n, 56)
        answer = client.post(f"/v1/models/{model_id}/data", content=body, headers=headers)
        assert answer.status_code == 201, answer.text
    training_id = work.train(model_id)
    assert work.run_jobs() == 1
    return model_id, training_id


def _second_worker(settings_json: str, blobs: str, go: Any, said: Any) -> None:
    """A worker process of its own: runs what is queued, says so, waits for ``go``, runs what
    is queued again."""
    container = build(
        Settings.model_validate_json(settings_json), blobs=LocalBlobStore(Path(blobs))
    )
    try:
        worker = build_worker(
            container, trainer=FakeTrainer(), generator=FakeGenerator(), owner="second"
        )
        while worker.run_once():
            pass
        said.put("ran")
        if go.wait(120):
            while worker.run_once():
                pass
            said.put("ran again")
    finally:
        container.close()


def test_after_an_erase_no_worker_keeps_a_copy(
    work: Work, settings: Settings, tmp_path: Path
) -> None:
    erased_model, erased = trained(work)
    kept_model, kept = _trained_apart(work)
    embedded_dir = work.api.container.settings.data_dir
    for model_id, training_id in ((erased_model, erased), (kept_model, kept)):
        _predict(work, model_id, training_id)
    assert work.run_jobs() == 2
    assert _cached(embedded_dir) == {f"{erased}.safetensors", f"{kept}.safetensors"}
    # A second worker process, its own work folder: it runs two predictions too.
    for model_id, training_id in ((erased_model, erased), (kept_model, kept)):
        _predict(work, model_id, training_id)
    second_dir = tmp_path / "second"
    second = settings.model_copy(update={"data_dir": second_dir})
    context = multiprocessing.get_context("spawn")
    go, said = context.Event(), context.Queue()
    process = context.Process(
        target=_second_worker,
        args=(second.model_dump_json(), str(embedded_dir / "blobs"), go, said),
    )
    process.start()
    try:
        assert said.get(timeout=120) == "ran"
        assert _cached(second_dir) == {f"{erased}.safetensors", f"{kept}.safetensors"}

        _erase_first_image(work, erased_model, erased)

        # The process that erased: its copies are gone at once, its generator unloaded them.
        assert _cached(embedded_dir) == {f"{kept}.safetensors"}
        assert embedded_dir / "work" / "loras" / f"{erased}.safetensors" in (
            work.generator.forgotten
        )
        # Another worker: before its next prediction.
        follow_up = _predict(work, kept_model, kept)
        go.set()
        assert said.get(timeout=120) == "ran again"
        assert _status(work, follow_up) == "succeeded"
        assert _cached(second_dir) == {f"{kept}.safetensors"}
    finally:
        go.set()
        process.join(timeout=60)
    assert process.exitcode == 0


class _HookedBlobs(LocalBlobStore):
    """The same blob folder; ``hook`` runs once, when a blob is next opened."""

    hook: Callable[[], None] | None = None

    def open(self, key: str) -> BinaryIO:
        stream = super().open(key)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return stream


@dataclass
class Elsewhere:
    """A worker with a work folder of its own (the erase cannot reach it), over the same
    database and blobs."""

    container: Container
    worker: Worker
    blobs: _HookedBlobs

    def cached(self, training_id: str) -> set[str]:
        return _of(_cached(self.container.settings.data_dir), training_id)


@pytest.fixture
def elsewhere(work: Work, settings: Settings, tmp_path: Path) -> Iterator[Elsewhere]:
    blobs = _HookedBlobs(work.api.container.settings.data_dir / "blobs")
    container = build(settings.model_copy(update={"data_dir": tmp_path / "else"}), blobs=blobs)
    try:
        worker = build_worker(
            container, trainer=FakeTrainer(), generator=FakeGenerator(), owner="elsewhere"
        )
        yield Elsewhere(container=container, worker=worker, blobs=blobs)
    finally:
        container.close()


def test_an_erase_landing_while_a_worker_copies_leaves_no_copy(
    work: Work, elsewhere: Elsewhere
) -> None:
    model_id, training_id = trained(work)
    prediction_id = _predict(work, model_id, training_id)
    elsewhere.blobs.hook = lambda: _erase_first_image(work, model_id, training_id)

    assert elsewhere.worker.run_once()

    assert _status(work, prediction_id) == "failed"
    assert not elsewhere.cached(training_id)


def test_an_erase_racing_a_worker_s_copy_leaves_no_copy(work: Work, elsewhere: Elsewhere) -> None:
    """Whatever the interleaving: a prediction failed for the erase leaves no copy; one that
    started first leaves one until the worker's next prune."""
    outcomes = [_race_once(work, elsewhere) for _ in range(RACE_ROUNDS)]
    assert set(outcomes) <= {"failed", "succeeded"}


def _race_once(work: Work, elsewhere: Elsewhere) -> str:
    model_id, training_id = trained(work)
    prediction_id = _predict(work, model_id, training_id)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def call(fn: Callable[[], object]) -> None:
        start.wait()
        try:
            fn()
        except BaseException as exc:  # reported below
            errors.append(exc)

    def erase() -> None:
        _erase_first_image(work, model_id, training_id)

    threads = [threading.Thread(target=call, args=(f,)) for f in (elsewhere.worker.run_once, erase)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    status = _status(work, prediction_id)
    if status == "succeeded":  # it started before the erase: its copy goes at the next prune
        assert elsewhere.cached(training_id)
        elsewhere.container.lora_cache.prune()
    else:
        assert status == "failed"
    assert not elsewhere.cached(training_id)
    return status
