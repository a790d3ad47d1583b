"""Captions as use cases over fakes: a client's caption at upload or later, automatic captions
written by caption jobs (never in the request) when a captioning model is configured, caption
runs asked for, polled, resumed and failed, and what a run leaves alone."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from loraforge.domain.captions import CaptionSource
from loraforge.domain.entities import ALL_FORMATS, Image, ImageKind
from loraforge.domain.errors import Conflict, InvalidInput, NotFound
from loraforge.domain.work import CaptionRun, JobKind, JobState, RunStatus
from loraforge.services.caption_runs import NO_CAPTIONER
from loraforge.services.images import Upload
from tests.fakes import PROCESSED
from tests.integration.repositories import entities
from tests.ml_fakes import FakeCaptioner, caption_of
from tests.unit.services.work_world import LEASE_S, STRANGER, WHO, WorkWorld, make_world

AUTO_CAPTION = caption_of(PROCESSED.display)  # the fake processor's display variant
TRAINING, REFERENCE = ImageKind.TRAINING, ImageKind.REFERENCE
USER, AUTO, NONE = CaptionSource.USER, CaptionSource.AUTO, CaptionSource.NONE


@pytest.fixture
def captioner() -> FakeCaptioner:
    return FakeCaptioner()


@pytest.fixture
def work(tmp_path: Path, captioner: FakeCaptioner) -> Iterator[WorkWorld]:
    """A server with a captioning model, its worker captioning with ``captioner``."""
    built = make_world(tmp_path, captioner=captioner)
    _model(built)
    yield built
    built.images.close()


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[WorkWorld]:
    """A server without a captioning model."""
    built = make_world(tmp_path)
    _model(built)
    yield built
    built.images.close()


def _model(work: WorkWorld, model_id: str = "m-1") -> None:
    with work.uow(write=True) as tx:
        tx.models.add(entities.model(model_id))
        tx.commit()


def upload(
    work: WorkWorld,
    caption: str | None = None,
    *,
    kind: ImageKind = TRAINING,
    model_id: str | None = "m-1",
    data: bytes = b"picture",
) -> Image:
    return work.images.ingest(
        WHO,
        Upload(stream=io.BytesIO(data), name="a.jpg", caption=caption),
        kind=kind,
        model_id=model_id,
        allowed=ALL_FORMATS,
    )


def stored(work: WorkWorld, image_id: str) -> Image:
    return work.uow.state.images[image_id]


def runs(work: WorkWorld) -> list[CaptionRun]:
    return sorted(work.uow.state.caption_runs.values(), key=lambda r: r.id)


# --- a client's captions -----------------------------------------------------------------


def test_a_caption_given_at_upload_is_the_users_and_queues_nothing(work: WorkWorld) -> None:
    image = upload(work, "  a red\ndress ")
    empty = upload(work, "")  # no caption, on purpose: automatic captioning leaves it alone

    assert (image.caption, image.caption_source) == ("a red dress", USER)
    assert stored(work, image.id) == image
    assert (stored(work, empty.id).caption, stored(work, empty.id).caption_source) == ("", USER)
    assert runs(work) == []
    assert [j for j in work.uow.state.jobs.values() if j.kind is JobKind.CAPTION] == []


def test_only_training_images_take_a_caption(work: WorkWorld) -> None:
    with pytest.raises(InvalidInput) as refused:
        upload(work, "a pose", kind=REFERENCE)
    assert refused.value.field == "caption"
    assert work.uow.state.images == {}

    reference = upload(work, kind=REFERENCE)
    assert (reference.caption, reference.caption_source) == ("", NONE)
    assert runs(work) == []  # reference images are never captioned


def test_set_caption_writes_the_users_caption(work: WorkWorld) -> None:
    image = upload(work, "first")

    changed = work.training_images.set_caption(WHO, image.id, " second\tone ")
    cleared = work.training_images.set_caption(WHO, image.id, "", model_id="m-1", kind=TRAINING)

    assert (changed.caption, changed.caption_source) == ("second one", USER)
    assert stored(work, image.id) == cleared
    assert (cleared.caption, cleared.caption_source) == ("", USER)


def test_set_caption_refuses_what_has_no_caption_or_is_out_of_scope(work: WorkWorld) -> None:
    image = upload(work, "mine")
    reference = upload(work, kind=REFERENCE)
    _model(work, "m-2")

    with pytest.raises(InvalidInput) as not_training:
        work.training_images.set_caption(WHO, reference.id, "a pose")
    assert not_training.value.field == "caption"
    with pytest.raises(InvalidInput) as too_long:
        work.training_images.set_caption(WHO, image.id, "x" * 1001)
    assert too_long.value.field == "caption"
    with pytest.raises(NotFound):
        work.training_images.set_caption(WHO, image.id, "x", model_id="m-2")
    with pytest.raises(NotFound):
        work.training_images.set_caption(WHO, image.id, "x", kind=REFERENCE)
    with pytest.raises(NotFound):
        work.training_images.set_caption(STRANGER, image.id, "x")
    with pytest.raises(NotFound):
        work.training_images.set_caption(WHO, reference.id, "x", kind=TRAINING)
    assert stored(work, image.id).caption == "mine"


# --- automatic captions ------------------------------------------------------------------


def test_an_upload_without_a_caption_is_captioned_by_a_job_after_the_answer(
    work: WorkWorld, captioner: FakeCaptioner
) -> None:
    image = upload(work)

    assert (image.caption, image.caption_source) == ("", NONE)  # the answer: not yet
    assert captioner.calls == []  # nothing captioned in the request
    (run,) = runs(work)
    assert (run.model_id, run.image_ids, run.overwrite) == ("m-1", [image.id], False)
    assert run.progress.total_steps == 1
    assert work.queue.submitted == [run.id]
    assert work.queue.committed_at_submit == [True]

    assert work.run_jobs() == 1

    assert captioner.calls == [PROCESSED.display]  # the server's display variant
    assert (stored(work, image.id).caption, stored(work, image.id).caption_source) == (
        AUTO_CAPTION,
        AUTO,
    )
    done = runs(work)[0]
    assert (done.status, done.captioned, done.failed) == (RunStatus.SUCCEEDED, 1, 0)
    assert (done.progress.step, done.progress.total_steps) == (1, 1)
    assert work.captions.get(WHO, "m-1", run.id) == done


def test_without_a_captioning_model_uploads_stay_uncaptioned_and_runs_are_refused(
    plain: WorkWorld,
) -> None:
    image = upload(plain)

    assert plain.run_jobs() == 0
    assert (stored(plain, image.id).caption, stored(plain, image.id).caption_source) == ("", NONE)
    with pytest.raises(Conflict) as refused:
        plain.captions.request(WHO, "m-1", overwrite=False)
    assert refused.value.code == "captioning_unavailable"
    with pytest.raises(NotFound):  # an unknown model is a 404 first
        plain.captions.request(WHO, "m-missing", overwrite=False)
    assert runs(plain) == []


def test_a_run_asked_for_captions_the_uncaptioned_or_with_overwrite_every_image(
    work: WorkWorld, captioner: FakeCaptioner
) -> None:
    mine = upload(work, "mine")
    auto = upload(work)
    work.run_jobs()
    waiting = upload(work)  # its own job has not run yet

    uncaptioned = work.captions.request(WHO, "m-1", overwrite=False)
    everything = work.captions.request(WHO, "m-1", overwrite=True)

    assert uncaptioned.image_ids == [waiting.id]
    assert everything.image_ids == [mine.id, auto.id, waiting.id]  # upload order
    assert everything.progress.total_steps == 3
    assert work.queue.submitted[-2:] == [uncaptioned.id, everything.id]
    captioner.text = "a new caption"
    work.run_jobs()
    assert {stored(work, i.id).caption for i in (mine, auto, waiting)} == {"a new caption"}
    assert stored(work, mine.id).caption_source is AUTO  # overwrite replaces the user's too
    # Jobs run in order: the upload's run captioned its image, so the run asked for next
    # found nothing left to do; overwrite captioned all three again.
    assert [(r.captioned, r.status) for r in runs(work)][-3:] == [
        (1, RunStatus.SUCCEEDED),
        (0, RunStatus.SUCCEEDED),
        (3, RunStatus.SUCCEEDED),
    ]


def test_a_caption_written_while_the_model_was_busy_is_kept(
    work: WorkWorld, captioner: FakeCaptioner
) -> None:
    image = upload(work)

    def write_caption(_: int) -> None:
        work.training_images.set_caption(WHO, image.id, "the user's")

    captioner.hook = write_caption

    work.run_jobs()

    assert (stored(work, image.id).caption, stored(work, image.id).caption_source) == (
        "the user's",
        USER,
    )
    (run,) = runs(work)
    assert (run.status, run.captioned, run.progress.step) == (RunStatus.SUCCEEDED, 0, 1)


def test_an_image_deleted_or_replaced_meanwhile_is_left_alone(
    work: WorkWorld, captioner: FakeCaptioner
) -> None:
    gone, replaced = upload(work, "a"), upload(work, "b")
    run = work.captions.request(WHO, "m-1", overwrite=True)
    work.images.delete(WHO, gone.id)

    def replace(_: int) -> None:
        upload_bytes = Upload(stream=io.BytesIO(b"other picture"))
        work.images.replace(WHO, replaced.id, upload_bytes, allowed=ALL_FORMATS)

    captioner.hook = replace
    assert work.run_jobs() == 1

    done = work.uow.state.caption_runs[run.id]
    assert (done.status, done.captioned, done.progress.step) == (RunStatus.SUCCEEDED, 0, 2)
    assert len(captioner.calls) == 1  # the deleted image was not captioned at all
    assert (stored(work, replaced.id).caption, stored(work, replaced.id).caption_source) == (
        "b",
        USER,
    )


def test_a_failing_model_leaves_the_image_as_it_was_and_goes_on(
    work: WorkWorld, captioner: FakeCaptioner
) -> None:
    first, second, third = upload(work, "a"), upload(work, "b"), upload(work, "c")
    captioner.fail_on = {1}
    run = work.captions.request(WHO, "m-1", overwrite=True)
    captioner.hook = lambda n: setattr(captioner, "text", "" if n == 2 else None)

    work.run_jobs()

    done = work.uow.state.caption_runs[run.id]
    assert (done.status, done.captioned, done.failed) == (RunStatus.SUCCEEDED, 1, 2)
    assert [stored(work, i.id).caption for i in (first, second, third)] == ["a", "b", AUTO_CAPTION]


def test_new_bytes_drop_an_automatic_caption_and_keep_a_users(work: WorkWorld) -> None:
    auto, mine = upload(work), upload(work, "mine")
    work.run_jobs()

    for image in (auto, mine):
        work.images.replace(WHO, image.id, Upload(stream=io.BytesIO(b"new")), allowed=ALL_FORMATS)

    assert (stored(work, auto.id).caption, stored(work, auto.id).caption_source) == ("", NONE)
    assert (stored(work, mine.id).caption, stored(work, mine.id).caption_source) == ("mine", USER)
    assert runs(work)[-1].image_ids == [auto.id]  # the new picture gets a caption of its own
    work.run_jobs()
    assert stored(work, auto.id).caption_source is AUTO


def test_copies_keep_their_caption_and_the_uncaptioned_are_queued(work: WorkWorld) -> None:
    captioned = upload(work, "kept", model_id=None)
    bare = upload(work, model_id=None)
    assert runs(work) == []  # an image of no model is never trained: not captioned

    copies = work.training_images.copy_in(WHO, "m-1", [captioned.id, bare.id], origin="native")

    assert [(c.caption, c.caption_source) for c in copies] == [("kept", USER), ("", NONE)]
    (run,) = runs(work)
    assert run.image_ids == [copies[1].id]


def test_a_run_taken_over_goes_on_from_the_images_done(
    work: WorkWorld, captioner: FakeCaptioner
) -> None:
    first, second = upload(work, "a"), upload(work, "b")
    run = work.captions.request(WHO, "m-1", overwrite=True)  # user captions: no other job
    lease = work.jobs.claim("dying-worker")
    assert lease is not None
    taken = []

    def take_over(n: int) -> None:
        if n == 2:  # the first worker stalls on its second image; another takes the job over
            work.clock.advance(LEASE_S + 1)
            taken.append(work.jobs.claim("other-worker"))

    captioner.hook = take_over
    work.caption_runner.run(lease, lambda: False)

    halfway = work.uow.state.caption_runs[run.id]
    assert (halfway.status, halfway.progress.step, halfway.captioned) == (
        RunStatus.PROCESSING,
        1,
        1,
    )
    assert stored(work, second.id).caption == "b"  # the stalled worker wrote nothing more
    (other,) = taken
    assert other is not None
    work.caption_runner.run(other, lambda: False)

    finished = work.uow.state.caption_runs[run.id]
    assert (finished.status, finished.captioned, finished.progress.step) == (
        RunStatus.SUCCEEDED,
        2,
        2,
    )
    assert len(captioner.calls) == 3  # the first image was not captioned again
    assert stored(work, first.id).caption_source is AUTO


def test_a_worker_without_a_captioning_model_fails_the_run(tmp_path: Path) -> None:
    work = make_world(tmp_path, configured=True)  # the server has one, this worker has not
    _model(work)
    upload(work)

    work.run_jobs()

    (run,) = runs(work)
    assert (run.status, run.error) == (RunStatus.FAILED, NO_CAPTIONER)
    work.images.close()


def test_a_run_whose_workers_keep_dying_fails(work: WorkWorld) -> None:
    upload(work)
    work.exhaust_attempts()

    assert work.run_jobs() == 0

    (run,) = runs(work)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "giving up" in run.error
    captions = [j for j in work.uow.state.jobs.values() if j.kind is JobKind.CAPTION]
    assert {j.state for j in captions} == {JobState.DONE}


def test_runs_are_read_by_their_account_and_model_only(work: WorkWorld) -> None:
    run = work.captions.request(WHO, "m-1", overwrite=False)
    _model(work, "m-2")

    assert work.captions.get(WHO, "m-1", run.id) == run
    for who, model_id, run_id in (
        (STRANGER, "m-1", run.id),
        (WHO, "m-2", run.id),
        (WHO, "m-1", "cr-missing"),
    ):
        with pytest.raises(NotFound):
            work.captions.get(who, model_id, run_id)
