"""GET /v1/models/{modelId}/data/archive: the training set as the ZIP that POST takes, so that
it round-trips (same bytes, same captions)."""

from __future__ import annotations

import hashlib
import io
import zipfile

from tests import imagefactory
from tests.conftest import Api
from tests.integration.api.test_model_data import add_data, create_model
from tests.integration.api.test_model_data_archive import jpeg, listed, post_archive
from tests.zips import entries_of, make_zip


def test_the_training_set_downloads_as_the_same_layout_and_round_trips(api: Api) -> None:
    source = create_model(api)
    body = make_zip(
        [
            ("a.jpg", jpeg(1)),
            ("a.txt", b"a red house"),
            ("b.png", imagefactory.png(64, 64, alpha=True)),
            ("c.webp", imagefactory.webp(80, 60)),
            ("c.txt", b""),  # an empty caption, on purpose: it stays the user's
        ]
    )
    assert post_archive(api, source, body).status_code == 201
    single = add_data(api, source, jpeg(2))
    caption = {"caption": "patched later"}
    patched = api.client.patch(
        f"/v1/models/{source}/data/{single}", json=caption, headers=api.headers
    )
    assert patched.status_code == 200, patched.text

    download = api.client.get(f"/v1/models/{source}/data/archive", headers=api.headers)

    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/zip"
    assert download.headers["content-disposition"] == f'attachment; filename="{source}-data.zip"'
    files = entries_of(download.content)
    images = {n: d for n, d in files.items() if not n.endswith(".txt")}
    assert sorted(hashlib.sha256(d).hexdigest() for d in images.values()) == sorted(
        i["sha256"] for i in listed(api, source)
    )
    stems = {n.rsplit(".", 1)[0]: n for n in images}
    captions = {n.rsplit(".", 1)[0]: d.decode() for n, d in files.items() if n.endswith(".txt")}
    assert set(captions) <= set(stems)
    assert sorted(captions.values()) == ["", "a red house", "patched later"]
    assert {"a.jpg", "b.png", "c.webp"} <= set(images)  # the uploads' names, kept

    copy = create_model(api)
    again = post_archive(api, copy, download.content)

    assert again.status_code == 201, again.text
    assert again.json()["totals"] == {"created": 4, "rejected": 0, "skipped": 0}

    def dataset(model_id: str) -> list[tuple[str, str, str]]:
        return sorted(
            (i["sha256"], i["caption"], i["captionSource"]) for i in listed(api, model_id)
        )

    assert dataset(copy) == dataset(source)


def test_downloaded_names_are_unique_and_safe_whatever_was_uploaded(api: Api) -> None:
    model_id = create_model(api)
    names = [
        "same.jpg",
        "same.jpg",
        "SAME.jpg",
        "..",
        "C:evil.jpg",
        "photo.zip",
        "x.txt",
        "a b\u00e9.jpg",
    ]
    for n, name in enumerate(names):
        response = api.client.post(
            "/v1/images",
            params={"modelId": model_id, "type": "modelInput", "name": name},
            content=jpeg(n),
            headers=api.headers,
        )
        assert response.status_code == 201, response.text

    download = api.client.get(f"/v1/models/{model_id}/data/archive", headers=api.headers)

    assert download.status_code == 200, download.text
    files = entries_of(download.content)
    assert len(files) == len(names)
    assert all(name.endswith(".jpg") for name in files)
    assert len({name.lower() for name in files}) == len(names)
    assert "a b\u00e9.jpg" in files
    again = post_archive(api, create_model(api), download.content)
    assert again.status_code == 201, again.text
    assert again.json()["totals"]["created"] == len(names)


def test_an_empty_training_set_downloads_as_an_empty_archive(api: Api) -> None:
    model_id = create_model(api)
    download = api.client.get(f"/v1/models/{model_id}/data/archive", headers=api.headers)
    assert download.status_code == 200, download.text
    assert entries_of(download.content) == {}
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert archive.testzip() is None
