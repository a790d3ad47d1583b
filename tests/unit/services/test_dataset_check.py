"""The dataset check as use cases over fakes: the report (measured on demand where the
background job has not run), an upload's warnings, the job that measures a new training image,
and what a training does with the check (refuse, freeze, each file once, buckets)."""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from loraforge.domain.dataset import BLURRY_BELOW, ImageQuality
from loraforge.domain.entities import ALL_FORMATS, Image, ImageKind
from loraforge.domain.errors import Conflict, NotFound
from loraforge.domain.ml import BaseModel, ModelFamily
from loraforge.domain.work import JobKind, JobState
from loraforge.services import dataset_check
from loraforge.services.images import Upload
from loraforge.services.training_plan import Overrides
from tests.fakes import good_quality
from tests.integration.repositories import entities
from tests.unit.services.work_world import MIN_IMAGES, STRANGER, WHO, WorkWorld, make_world

INSPECTION = frozenset({JobKind.INSPECTION})


def add_image(work: WorkWorld, model_id: str, image_id: str, *, t: float, **changes: Any) -> Image:
    """A training image whose display bytes are stored (``<id>:display``, as entities key
    them); ``copy_of`` makes it the same file as another image."""
    source = changes.pop("copy_of", image_id)
    image = entities.image(image_id, model_id, t=t)
    original = entities.image(source, model_id)
    image = dataclasses.replace(
        image, sha256=original.sha256, display_key=original.display_key, **changes
    )
    work.blobs.put_bytes(f"{source}:display".encode())
    with work.uow(write=True) as tx:
        if tx.models.get(entities.ME, model_id) is None:
            tx.models.add(entities.model(model_id))
        tx.images.add(image)
        tx.commit()
    return image


def measures(work: WorkWorld, image_id: str, **changes: Any) -> ImageQuality:
    """What the fake inspector answers for the image's display bytes from now on."""
    data = f"{image_id}:display".encode()
    quality = dataclasses.replace(good_quality(data), **changes)
    work.inspector.measures[data] = quality
    return quality


def codes(checked: dataset_check.CheckedDataset) -> dict[str, list[str]]:
    return {i.id: [issue.code for issue in i.issues] for i in checked.report.images}


# --- the report ---------------------------------------------------------------------------


def test_the_report_judges_every_training_image_with_its_numbers(work: WorkWorld) -> None:
    add_image(work, "m-1", "sharp", t=1)
    add_image(work, "m-1", "copy", t=2, copy_of="sharp")
    add_image(work, "m-1", "burst", t=3)
    add_image(work, "m-1", "blurred", t=4)
    add_image(work, "m-1", "bare", t=5, caption="")
    phash = measures(work, "sharp").phash
    measures(work, "burst", phash=phash[:-1] + format(int(phash[-1], 16) ^ 0b11, "x"))
    measures(work, "blurred", sharpness=BLURRY_BELOW / 2)

    checked = work.dataset.report(WHO, "m-1")

    assert codes(checked) == {
        "sharp": [],
        "copy": ["exact_duplicate"],
        "burst": ["near_duplicate"],
        "blurred": ["blurry"],
        "bare": ["uncaptioned"],
    }
    report = checked.report
    (near,) = report.images[2].issues
    assert near.details == {"of": "sharp", "distance": 2, "threshold": 10}
    assert report.images[1].issues[0].details == {"of": "sharp"}
    assert (report.count, report.usable, report.captioned) == (5, 3, 4)
    assert report.issue_counts == {
        "blurry": 1,
        "exact_duplicate": 1,
        "near_duplicate": 1,
        "uncaptioned": 1,
    }
    assert (report.ready, report.min_images) == (True, MIN_IMAGES)
    assert checked.unmeasured == frozenset()
    assert checked.frozen() == {
        "count": 5,
        "usable": 3,
        "captioned": 4,
        "unmeasured": 0,
        "minImages": MIN_IMAGES,
        "ready": True,
        "issues": report.issue_counts,
    }


def test_a_person_model_is_checked_for_faces(work: WorkWorld) -> None:
    add_image(work, "m-1", "alone", t=1)
    add_image(work, "m-1", "crowd", t=2)
    add_image(work, "m-1", "nobody", t=3)
    measures(work, "alone", faces=1)
    measures(work, "crowd", faces=3)
    with work.uow(write=True) as tx:
        model = tx.models.get(entities.ME, "m-1")
        assert model is not None
        tx.models.update(dataclasses.replace(model, custom_model_type="Person"))
        tx.commit()

    checked = work.dataset.report(WHO, "m-1")

    assert codes(checked) == {"alone": [], "crowd": ["multiple_faces"], "nobody": ["no_face"]}
    assert [i.faces for i in checked.report.images] == [1, 3, 0]


def test_the_report_measures_images_once_and_keeps_what_it_measured(work: WorkWorld) -> None:
    add_image(work, "m-1", "a", t=1)
    add_image(work, "m-1", "b", t=2)

    first = work.dataset.report(WHO, "m-1")
    again = work.dataset.report(WHO, "m-1")

    assert first == again
    assert sorted(work.inspector.calls) == [b"a:display", b"b:display"]  # once each
    stored = work.uow.state.image_quality
    assert {k: v[1] for k, v in stored.items()} == {
        "a": good_quality(b"a:display"),
        "b": good_quality(b"b:display"),
    }


def test_an_image_that_cannot_be_measured_is_reported_as_not_measured(work: WorkWorld) -> None:
    add_image(work, "m-1", "fine", t=1)
    add_image(work, "m-1", "broken", t=2, width=100, height=90)
    work.inspector.broken.add(b"broken:display")

    checked = work.dataset.report(WHO, "m-1")

    assert checked.unmeasured == {"broken"}
    assert codes(checked)["broken"] == []  # nothing known against it; size is fine at 64 px
    assert [i.faces for i in checked.report.images] == [0, None]


def test_at_most_a_batch_is_measured_on_demand_per_report(
    work: WorkWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_check, "MEASURE_AT_ONCE", 2)
    for n in range(5):
        add_image(work, "m-1", f"img-{n}", t=n)

    assert work.dataset.report(WHO, "m-1").unmeasured == {"img-2", "img-3", "img-4"}
    assert work.dataset.report(WHO, "m-1").unmeasured == {"img-4"}  # oldest first
    assert work.dataset.report(WHO, "m-1").unmeasured == frozenset()


def test_new_bytes_are_measured_again(work: WorkWorld) -> None:
    image = add_image(work, "m-1", "img", t=1)
    work.dataset.report(WHO, "m-1")
    work.blobs.put_bytes(b"other:display")
    work.inspector.measures[b"other:display"] = dataclasses.replace(
        good_quality(b"other:display"), sharpness=1.0
    )
    replaced = dataclasses.replace(image, display_key=entities.blob_key("other:display"))
    with work.uow(write=True) as tx:
        tx.images.update(replaced)
        tx.commit()

    assert codes(work.dataset.report(WHO, "m-1")) == {"img": ["blurry"]}


def test_a_report_of_another_account_s_model_is_not_found(work: WorkWorld) -> None:
    add_image(work, "m-1", "img", t=1)
    with pytest.raises(NotFound):
        work.dataset.report(STRANGER, "m-1")
    with pytest.raises(NotFound):
        work.dataset.report(WHO, "m-missing")
    assert work.inspector.calls == []


# --- an upload's warnings -----------------------------------------------------------------


def test_an_upload_warns_of_what_is_known_at_once(work: WorkWorld) -> None:
    work.model("m-1", images=0)
    first = add_image(work, "m-1", "first", t=1)
    tiny = add_image(work, "m-1", "tiny", t=2, width=40, height=30, caption="")
    wide = add_image(work, "m-1", "wide", t=3, width=300, height=100)
    copy = add_image(work, "m-1", "copy", t=4, copy_of="first")

    assert work.dataset.warnings(WHO, first) == []
    assert [(i.code, i.details) for i in work.dataset.warnings(WHO, tiny)] == [
        ("low_resolution", {"shortSide": 30, "minimum": 64}),
        ("uncaptioned", {}),
    ]
    assert [(i.code, i.details) for i in work.dataset.warnings(WHO, wide)] == [
        ("extreme_aspect", {"aspect": 3.0, "maximum": 2.5}),
    ]
    assert [(i.code, i.details) for i in work.dataset.warnings(WHO, copy)] == [
        ("exact_duplicate", {"of": "first"}),
    ]
    assert work.inspector.calls == []  # nothing is measured for a warning


def test_only_a_model_s_training_images_get_warnings_and_they_never_fail(
    work: WorkWorld,
) -> None:
    work.model("m-1", images=0)
    tiny = add_image(work, "m-1", "tiny", t=1, width=10, height=10)
    reference = dataclasses.replace(tiny, kind=ImageKind.REFERENCE)
    assert work.dataset.warnings(WHO, reference) == []
    assert work.dataset.warnings(WHO, dataclasses.replace(tiny, model_id=None)) == []

    work.uow.down = True
    assert work.dataset.warnings(WHO, tiny) == []  # the upload is stored: no 503 for advice


# --- measuring in the background ----------------------------------------------------------


def upload(work: WorkWorld, model_id: str | None, kind: ImageKind = ImageKind.TRAINING) -> Image:
    return work.images.ingest(
        WHO,
        Upload(stream=io.BytesIO(b"any bytes"), name="a.jpg"),
        kind=kind,
        model_id=model_id,
        allowed=ALL_FORMATS,
    )


def test_a_training_upload_queues_its_measuring_with_its_row(work: WorkWorld) -> None:
    work.model("m-1", images=0)
    image = upload(work, "m-1")
    upload(work, "m-1", ImageKind.REFERENCE)
    upload(work, None, ImageKind.REFERENCE)

    (job,) = work.uow.state.jobs.values()
    assert (job.kind, job.subject_id, job.state) == (JobKind.INSPECTION, image.id, JobState.QUEUED)
    assert work.queue.submitted == []  # found by polling, never a queue message
    assert work.run_jobs() == 0  # not a training's or a prediction's loop

    assert work.run_jobs(INSPECTION) == 1
    stored = work.uow.state.image_quality[image.id]
    assert stored == (image.display_key, good_quality(b"fake display variant"))
    assert work.uow.state.jobs[job.id].state is JobState.DONE


@pytest.mark.parametrize("loop", ["run_forever", "serve_side_duties"])
def test_every_worker_loop_measures_beside_its_runs(work: WorkWorld, loop: str) -> None:
    """The in-process worker's loop and a Celery worker's side duties both poll for them."""
    work.model("m-1", images=0)
    image = upload(work, "m-1")
    stop = threading.Event()
    run = {
        "run_forever": lambda: work.worker.run_forever(stop),
        "serve_side_duties": lambda: work.worker.serve_side_duties(stop, requeue_every_s=60),
    }[loop]
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while image.id not in work.uow.state.image_quality:
            assert time.monotonic() < deadline, "the image was not measured"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_new_bytes_are_queued_for_measuring_again(work: WorkWorld) -> None:
    work.model("m-1", images=0)
    image = upload(work, "m-1")
    work.run_jobs(INSPECTION)
    work.images.replace(
        WHO, image.id, Upload(stream=io.BytesIO(b"new"), name="b.jpg"), allowed=ALL_FORMATS
    )
    assert [j.state for j in work.uow.state.jobs.values()] == [JobState.DONE, JobState.QUEUED]


def test_the_job_skips_an_image_that_is_gone_or_measured(work: WorkWorld) -> None:
    work.model("m-1", images=0)
    gone, measured = upload(work, "m-1"), upload(work, "m-1")
    work.images.delete(WHO, gone.id)
    work.dataset.report(WHO, "m-1")  # measures the other on demand
    calls = len(work.inspector.calls)

    assert work.run_jobs(INSPECTION) == 2
    assert len(work.inspector.calls) == calls
    assert set(work.uow.state.image_quality) == {measured.id}
    assert {j.state for j in work.uow.state.jobs.values()} == {JobState.DONE}


def test_a_picture_that_cannot_be_measured_ends_its_job_with_the_reason(work: WorkWorld) -> None:
    work.model("m-1", images=0)
    work.inspector.broken.add(b"fake display variant")
    upload(work, "m-1")

    assert work.run_jobs(INSPECTION) == 1
    (job,) = work.uow.state.jobs.values()
    assert job.state is JobState.DONE
    assert job.last_error is not None
    assert "could not be measured" in job.last_error
    assert work.uow.state.image_quality == {}


def test_without_workers_that_can_run_jobs_nothing_is_queued(tmp_path: Path) -> None:
    work = make_world(tmp_path, unrunnable="no ML extra")
    try:
        work.model("m-1", images=0)
        image = upload(work, "m-1")
        assert work.uow.state.jobs == {}
        assert work.dataset.report(WHO, "m-1").unmeasured == frozenset()  # on demand
        assert image.id in work.uow.state.image_quality
    finally:
        work.images.close()


# --- a training and the check -------------------------------------------------------------


def test_a_training_can_require_a_ready_dataset(work: WorkWorld) -> None:
    add_image(work, "m-1", "sharp", t=1)
    add_image(work, "m-1", "copy", t=2, copy_of="sharp")
    add_image(work, "m-1", "blurred", t=3)
    measures(work, "blurred", sharpness=1.0)

    with pytest.raises(Conflict) as refused:
        work.start("m-1", require_ready_dataset=True)

    assert refused.value.code == "dataset_not_ready"
    assert refused.value.message == (
        "The dataset is not ready: 1 of 3 images are usable, 2 are needed "
        "(issues: 1 blurry, 1 exact_duplicate)."
    )
    assert (work.uow.state.trainings, work.queue.submitted) == ({}, [])

    add_image(work, "m-1", "another", t=4)
    training = work.start("m-1", require_ready_dataset=True)
    assert training.manifest["dataset"]["ready"] is True


def test_a_training_freezes_the_check_and_trains_each_file_once(work: WorkWorld) -> None:
    work.catalog.models.append(BaseModel("sd15", ModelFamily.SD15, resolution=512))
    work.model("m-1", images=0, base_model="sd15")
    add_image(work, "m-1", "first", t=1, width=1200, height=600)
    add_image(work, "m-1", "copy", t=2, copy_of="first", width=1200, height=600)
    add_image(work, "m-1", "tall", t=3, width=600, height=800)

    training = work.start("m-1")

    manifest = training.manifest
    assert manifest["hyperparameters"]["resolution"] == 256  # fast: half the native side
    assert [(i["id"], i["bucket"]) for i in manifest["images"]] == [
        ("first", "256x128"),  # the buckets of a 256 px plan: docs/training.md
        ("tall", "192x320"),
    ]
    assert len({i["sha256"] for i in manifest["images"]}) == 2
    assert manifest["dataset"] == {
        "count": 3,
        "usable": 2,
        "captioned": 3,
        "unmeasured": 0,
        "minImages": MIN_IMAGES,
        "ready": True,
        "issues": {"exact_duplicate": 1},
    }
    assert manifest["hyperparameters"]["flip_augment"] is False


def test_flip_augmentation_is_a_client_s_choice(work: WorkWorld) -> None:
    work.model("m-1")
    training = work.start("m-1", overrides=Overrides(flip_augment=True))
    assert training.manifest["hyperparameters"]["flip_augment"] is True
    work.run_jobs()
    (spec,) = work.trainer.specs
    assert spec.hyper.flip_augment is True


def test_a_training_measures_what_the_background_has_not_yet(work: WorkWorld) -> None:
    add_image(work, "m-1", "blurred", t=1)
    measures(work, "blurred", sharpness=1.0)

    training = work.start("m-1")

    assert training.manifest["dataset"]["issues"] == {"blurry": 1}
    assert training.manifest["dataset"]["unmeasured"] == 0
