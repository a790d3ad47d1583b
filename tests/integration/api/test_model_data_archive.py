"""/v1/models/{modelId}/data/archive: a training set as one ZIP, in and out.

What a single upload (``POST /v1/models/{modelId}/data``) would answer for an entry's bytes is
asked of the real endpoint here, not written down: an archive's entry must be answered the same.
Hostile archives are in ``test_hostile_archives.py``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from loraforge.bootstrap import build_worker
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api, serving
from tests.integration.api.test_model_data import add_data, assert_error, create_model
from tests.integration.test_concurrency import all_at_once, assert_blobs_match_rows
from tests.ml_fakes import FakeCaptioner, FakeGenerator, FakeTrainer
from tests.zips import make_zip


def api_with(settings: Settings, **overrides: Any) -> AbstractContextManager[Api]:
    """A server of its own whose settings have these ``overrides``."""
    return serving(settings.model_copy(update=overrides))


def jpeg(n: int) -> bytes:
    """A distinct, ordinary picture per ``n``."""
    return imagefactory.encoded(imagefactory.scene(n, (96 + n, 64)))


def post_archive(
    api: Api, model_id: str, body: bytes, headers: dict[str, str] | None = None
) -> Any:
    return api.client.post(
        f"/v1/models/{model_id}/data/archive",
        content=body,
        headers={**(headers or api.headers), "Content-Type": "application/zip"},
    )


def results_by_name(response: Any) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in response.json()["results"]}


def listed(api: Api, model_id: str) -> list[dict[str, Any]]:
    response = api.client.get(f"/v1/models/{model_id}/data", headers=api.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


def single_upload_code(api: Api, body: bytes, model_id: str | None = None) -> str:
    """The error code ``POST /v1/models/{id}/data`` answers for ``body`` (on a spare model
    unless told)."""
    response = api.client.post(
        f"/v1/models/{model_id or create_model(api)}/data", content=body, headers=api.headers
    )
    assert response.status_code >= 400, response.text
    code: str = response.json()["error"]["code"]
    return code


def add_data_answer(api: Api, body: bytes) -> dict[str, Any]:
    """A single upload's answer for ``body`` (on a spare model)."""
    response = api.client.post(
        f"/v1/models/{create_model(api)}/data", content=body, headers=api.headers
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_images_with_same_stem_captions_become_training_data(api: Api) -> None:
    model_id = create_model(api)
    body = make_zip(
        [
            ("a.jpg", jpeg(1)),
            ("a.txt", b"a red house\n"),
            ("b.png", imagefactory.png(64, 64)),
            ("set/c.webp", imagefactory.webp(80, 60)),
            ("set/c.txt", "a blue door, caf\u00e9 sign".encode()),
            ("notes.txt", b"no picture has this name"),
            ("__MACOSX/._a.jpg", b"\x00\x05\x16\x07"),
        ]
    )

    response = post_archive(api, model_id, body)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["totals"] == {"created": 3, "rejected": 0, "skipped": 2}
    assert [r["name"] for r in answer["results"]] == sorted(r["name"] for r in answer["results"])
    results = results_by_name(response)
    assert {name: r["status"] for name, r in results.items()} == {
        "a.jpg": "created",
        "b.png": "created",
        "set/c.webp": "created",
        "notes.txt": "skipped",
        "__MACOSX/._a.jpg": "skipped",
    }
    assert results["notes.txt"]["error"]["code"] == "orphan_caption"
    assert results["__MACOSX/._a.jpg"]["error"]["code"] == "not_an_image"
    for name in ("a.jpg", "b.png", "set/c.webp"):
        assert set(results[name]) == {"name", "status", "dataId", "warnings"}
    # The same warnings as a single upload of the same bytes (no caption, small).
    alone = add_data_answer(api, imagefactory.png(64, 64))
    assert results["b.png"]["warnings"] == alone["warnings"]
    assert {w["code"] for w in alone["warnings"]} >= {"uncaptioned"}
    by_id = {item["dataId"]: item for item in listed(api, model_id)}
    assert set(by_id) == {r["dataId"] for r in results.values() if r["status"] == "created"}
    captions = {
        name: (
            by_id[results[name]["dataId"]]["caption"],
            by_id[results[name]["dataId"]]["captionSource"],
        )
        for name in ("a.jpg", "b.png", "set/c.webp")
    }
    assert captions == {
        "a.jpg": ("a red house", "user"),
        "b.png": ("", "none"),
        "set/c.webp": ("a blue door, caf\u00e9 sign", "user"),
    }
    assert by_id[results["set/c.webp"]["dataId"]]["name"] == "c.webp"  # names are metadata
    assert by_id[results["a.jpg"]["dataId"]]["sha256"] == hashlib.sha256(jpeg(1)).hexdigest()


def test_every_created_entry_queues_its_measuring_like_a_single_upload(api: Api) -> None:
    model_id = create_model(api)
    response = post_archive(api, model_id, make_zip([("a.jpg", jpeg(1)), ("b.jpg", jpeg(2))]))
    assert response.status_code == 201, response.text

    ids = [r["dataId"] for r in response.json()["results"]]
    with api.container.uow() as uow:
        jobs = [uow.jobs.for_subject(data_id) for data_id in ids]
    assert [(j.kind.value, j.state.value) if j else None for j in jobs] == [
        ("inspection", "queued"),
        ("inspection", "queued"),
    ]


def test_uncaptioned_entries_are_captioned_by_a_job(settings: Settings) -> None:
    with serving(settings, captioner=FakeCaptioner()) as api:
        model_id = create_model(api)
        body = make_zip([("a.jpg", jpeg(1)), ("a.txt", b"mine"), ("b.jpg", jpeg(2))])
        response = post_archive(api, model_id, body)
        assert response.status_code == 201, response.text

        worker = build_worker(api.container, trainer=FakeTrainer(), generator=FakeGenerator())
        while worker.run_once():
            pass

        results = results_by_name(response)
        by_id = {i["dataId"]: i for i in listed(api, model_id)}
        assert (
            by_id[results["a.jpg"]["dataId"]]["caption"],
            by_id[results["a.jpg"]["dataId"]]["captionSource"],
        ) == ("mine", "user")
        auto = by_id[results["b.jpg"]["dataId"]]
        assert auto["captionSource"] == "auto"
        assert auto["caption"].startswith("a picture of ")


def test_a_multipart_file_part_works_like_a_raw_body(api: Api) -> None:
    model_id = create_model(api)
    body = make_zip([("a.jpg", jpeg(1)), ("a.txt", b"from a form")])

    response = api.client.post(
        f"/v1/models/{model_id}/data/archive",
        files={"file": ("set.zip", body, "application/zip")},
        headers=api.headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["totals"] == {"created": 1, "rejected": 0, "skipped": 0}
    assert [(i["caption"], i["captionSource"]) for i in listed(api, model_id)] == [
        ("from a form", "user")
    ]


def test_a_bad_entry_is_rejected_with_the_single_upload_code_and_the_rest_created(
    api: Api,
) -> None:
    model_id = create_model(api)
    bad = {
        "broken.jpg": imagefactory.truncated_jpeg(),
        "moving.gif": imagefactory.gif(16, 16),
        "text.jpg": imagefactory.not_an_image(),
        "empty.png": b"",
    }
    long_caption = b"word " * 300  # 1,500 characters: a caption holds 1,000
    body = make_zip(
        [
            ("good1.jpg", jpeg(1)),
            *bad.items(),
            ("wordy.jpg", jpeg(3)),
            ("wordy.txt", long_caption),
            ("good2.png", imagefactory.png(40, 30)),
        ]
    )

    response = post_archive(api, model_id, body)

    assert response.status_code == 201, response.text
    results = results_by_name(response)
    assert response.json()["totals"] == {"created": 2, "rejected": 5, "skipped": 0}
    assert {n for n, r in results.items() if r["status"] == "created"} == {"good1.jpg", "good2.png"}
    for name, data in bad.items():
        assert results[name]["status"] == "rejected"
        assert results[name]["error"]["code"] == single_upload_code(api, data), name
        assert results[name]["error"]["message"]
        assert "dataId" not in results[name]
    caption_refused = api.client.post(
        f"/v1/models/{create_model(api)}/data",
        params={"caption": long_caption.decode()},
        content=jpeg(3),
        headers=api.headers,
    )
    assert_error(caption_refused, 422, "invalid_request")
    assert results["wordy.jpg"]["error"]["code"] == "invalid_request"
    assert len(listed(api, model_id)) == 2


def test_entries_beyond_the_per_model_limit_are_rejected_with_limit_reached(
    settings: Settings,
) -> None:
    with api_with(settings, max_images_per_type=3) as api:
        model_id = create_model(api)
        add_data(api, model_id, jpeg(0))
        body = make_zip([(f"{n}.jpg", jpeg(n)) for n in range(1, 5)])

        response = post_archive(api, model_id, body)

        assert response.status_code == 201, response.text
        statuses = {
            n: (r["status"], r.get("error", {}).get("code"))
            for n, r in results_by_name(response).items()
        }
        assert statuses == {
            "1.jpg": ("created", None),
            "2.jpg": ("created", None),
            "3.jpg": ("rejected", "limit_reached"),  # the single upload's code when full
            "4.jpg": ("rejected", "limit_reached"),
        }
        assert single_upload_code(api, jpeg(9), model_id) == "limit_reached"
        assert len(listed(api, model_id)) == 3

        # Nothing created: the archive was still read, every entry has its answer (200).
        full = post_archive(api, model_id, make_zip([("5.jpg", jpeg(5))]))
        assert full.status_code == 200, full.text
        assert full.json()["totals"] == {"created": 0, "rejected": 1, "skipped": 0}
        assert full.json()["results"][0]["error"]["code"] == "limit_reached"
        assert_blobs_match_rows(api.container)


def test_two_archives_racing_for_a_small_limit_never_exceed_it(settings: Settings) -> None:
    with api_with(settings, max_images_per_type=3) as api:
        model_id = create_model(api)
        archives = [
            make_zip([(f"{side}{n}.jpg", jpeg(10 * k + n)) for n in range(3)])
            for k, side in enumerate("ab")
        ]

        def post(body: bytes) -> Callable[[], Any]:
            return lambda: post_archive(api, model_id, body)

        answers = all_at_once([post(body) for body in archives])

        assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
        outcomes = Counter(
            (r["status"], r.get("error", {}).get("code"))
            for a in answers
            for r in a.json()["results"]
        )
        assert outcomes == {("created", None): 3, ("rejected", "limit_reached"): 3}
        created = {r["dataId"] for a in answers for r in a.json()["results"] if "dataId" in r}
        assert {i["dataId"] for i in listed(api, model_id)} == created
        assert_blobs_match_rows(api.container)


def test_another_account_s_model_is_not_found(api: Api) -> None:
    model_id = create_model(api)
    other = api.new_account()
    body = make_zip([("a.jpg", jpeg(1))])

    assert_error(post_archive(api, model_id, body, headers=other), 404, "not_found")
    assert_error(
        api.client.get(f"/v1/models/{model_id}/data/archive", headers=other), 404, "not_found"
    )
    assert_error(post_archive(api, "no-such-model", body), 404, "not_found")
    assert_error(
        api.client.get("/v1/models/no-such-model/data/archive", headers=api.headers),
        404,
        "not_found",
    )
    assert listed(api, model_id) == []
