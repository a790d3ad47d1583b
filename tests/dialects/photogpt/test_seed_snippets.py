"""Seed 001's own snippets, run verbatim against a live server: Python ``requests`` in this
process, JavaScript ``fetch``/``FormData`` in Node.js (a Blob stands in for the browser's file
input). Only ``BASE_URL``, ``headers``, the ids, the file and the list filter are supplied."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import imagefactory
from tests.dialects.conftest import LiveServer
from tests.dialects.photogpt import seed_snippets as seed
from tests.dialects.photogpt.helpers import IMAGE_FIELDS, PREFIX, photogpt_headers, same_image

HTTP_TIMEOUT_S = 30
FILTERS = ("all", "input", "output", "auxiliaryType")


class Harness:
    def __init__(self, server: LiveServer, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.base_url = server.url(PREFIX)
        self.headers = photogpt_headers(server.key)
        self.photo = imagefactory.jpeg(48, 32)
        (workdir / "example").mkdir()
        (workdir / "example" / "image.jpg").write_bytes(self.photo)  # the Python snippet's file

    def python(self, snippet: str, **placeholders: str) -> dict[str, Any]:
        """Run the snippet as a script would, with ``requests``, ``BASE_URL`` and ``headers``
        defined first; returns its variables."""
        namespace: dict[str, Any] = {}
        harness = f"import requests\n\nBASE_URL = {self.base_url!r}\nheaders = {self.headers!r}\n"
        exec(compile(harness, "harness", "exec"), namespace)  # noqa: S102
        exec(compile(fill(snippet, placeholders), "seed-001", "exec"), namespace)  # noqa: S102
        return namespace

    def javascript(self, snippet: str, result: str | None, **placeholders: str) -> Any:
        """Run the snippet in Node.js as an ES module (top-level await); returns the JSON of
        its variable ``result``."""
        node = shutil.which("node")
        assert node, "Node.js (node) must be on PATH for the seed's JavaScript snippets"
        photo = self.workdir / "example" / "image.jpg"
        script = "\n".join(
            [
                "import { readFileSync } from 'node:fs'",
                f"const BASE_URL = {json.dumps(self.base_url)}",
                f"const headers = {json.dumps(self.headers)}",
                "const document = {",
                "  querySelector: () => ({",
                f"    files: [new Blob([readFileSync({json.dumps(str(photo))})],"
                " { type: 'image/jpeg' })],",
                "  }),",
                "}",
                "{",
                fill(snippet, placeholders),
                f"console.log(JSON.stringify({result or 'null'}))",
                "}",
            ]
        )
        path = self.workdir / "snippet.mjs"
        path.write_text(script)
        done = subprocess.run(
            [node, str(path)], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def auxiliary(self, model_id: str) -> str:
        """An auxiliaryType image to make the filters meaningful (not a snippet)."""
        payload = json.dumps({"modelID": model_id, "type": "auxiliaryType"})
        files: dict[str, tuple[str | None, bytes | str]] = {
            "file": ("ref.png", imagefactory.png(10, 10)),
            "data": (None, payload),
        }
        answer = httpx.post(
            f"{self.base_url}/images/upload",
            files=files,
            headers=self.headers,
            timeout=HTTP_TIMEOUT_S,
        )
        assert answer.status_code == 200, answer.text
        image_id: str = answer.json()["result"]["id"]
        return image_id

    def new_model(self) -> str:
        answer = httpx.post(
            f"{self.base_url}/models",
            json={"name": "Ann"},
            headers=self.headers,
            timeout=HTTP_TIMEOUT_S,
        )
        assert answer.status_code == 200, answer.text
        model_id: str = answer.json()["result"]["id"]
        return model_id

    def status_of(self, image_id: str) -> int:
        return httpx.get(
            f"{self.base_url}/images/{image_id}", headers=self.headers, timeout=HTTP_TIMEOUT_S
        ).status_code


def fill(snippet: str, placeholders: dict[str, str]) -> str:
    for placeholder, value in placeholders.items():
        assert placeholder in snippet, placeholder
        snippet = snippet.replace(placeholder, value)
    return snippet


@pytest.fixture
def harness(live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.chdir(tmp_path)  # the Python snippet opens "example/image.jpg"
    return Harness(live_server, tmp_path)


def test_the_python_snippets(harness: Harness) -> None:
    model_id = harness.new_model()
    aux = harness.auxiliary(model_id)

    image = harness.python(seed.PY_UPLOAD, **{"<MODEL_ID>": model_id})["image"]

    assert set(image) == IMAGE_FIELDS
    assert (image["modelID"], image["type"]) == (model_id, "modelInput")
    # the signed link, no headers
    assert httpx.get(image["url"], timeout=HTTP_TIMEOUT_S).content == harness.photo
    expected = {"all": {image["id"], aux}, "input": {image["id"]}, "output": set()}
    expected["auxiliaryType"] = {aux}
    for kind in FILTERS:
        listing = fill(seed.PY_LIST, {'"imageType": "all"': f'"imageType": "{kind}"'})
        images = harness.python(listing, **{"<MODEL_ID>": model_id})["images"]
        assert {i["id"] for i in images} == expected[kind], kind
    got = harness.python(seed.PY_GET, **{"<IMAGE_ID>": image["id"]})["image"]
    assert same_image(got, image)
    harness.python(seed.PY_DELETE, **{"<IMAGE_ID>": image["id"]})
    assert harness.status_of(image["id"]) == 404
    assert harness.status_of(aux) == 200


def test_the_javascript_snippets(harness: Harness) -> None:
    model_id = harness.new_model()
    aux = harness.auxiliary(model_id)

    image = harness.javascript(seed.JS_UPLOAD, "image", **{"<MODEL_ID>": model_id})

    assert set(image) == IMAGE_FIELDS
    assert (image["modelID"], image["type"]) == (model_id, "modelInput")
    assert httpx.get(image["url"], timeout=HTTP_TIMEOUT_S).content == harness.photo
    expected = {"all": {image["id"], aux}, "input": {image["id"]}, "output": set()}
    expected["auxiliaryType"] = {aux}
    for kind in FILTERS:
        listing = fill(seed.JS_LIST, {"imageType: 'all'": f"imageType: '{kind}'"})
        images = harness.javascript(listing, "images", **{"<MODEL_ID>": model_id})
        assert {i["id"] for i in images} == expected[kind], kind
    got = harness.javascript(seed.JS_GET, "image", **{"<IMAGE_ID>": image["id"]})
    assert same_image(got, image)
    harness.javascript(seed.JS_DELETE, None, **{"<IMAGE_ID>": image["id"]})
    assert harness.status_of(image["id"]) == 404
    assert harness.status_of(aux) == 200
