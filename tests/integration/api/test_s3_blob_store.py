"""The whole API on LORAFORGE_BLOB_STORE=s3, against moto's S3 server: uploads, content, signed
links, deletes, readiness and the sweep (in the server and from the command line) all go through
the bucket, and a bucket that is missing answers 503, never a botocore error."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from loraforge.cli.main import app as cli_app
from loraforge.domain.errors import NotFound
from loraforge.settings import Settings
from tests import imagefactory, s3_server
from tests.conftest import Api, serving
from tests.databases import SqliteDatabases
from tests.freezing_proxy import FreezingProxy, within

PREFIX = "loraforge/"


@pytest.fixture
def s3_settings(
    tmp_path: Path, sqlite_databases: SqliteDatabases, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for name, value in s3_server.CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_databases.create(tmp_path),
        signing_secret="test-secret",
        blob_sweep_interval_s=0,
        blob_sweep_grace_s=0,  # every blob is old enough: only references decide
        blob_store="s3",
        s3_bucket=s3_server.new_bucket(),  # one per test: parallel tests never meet
        s3_endpoint_url=s3_server.endpoint_url(),
        s3_region=s3_server.REGION,
        s3_prefix=PREFIX,
    )


@contextmanager
def api_on(settings: Settings) -> Iterator[Api]:
    with serving(settings) as api:
        yield api


@pytest.fixture
def s3_api(s3_settings: Settings) -> Iterator[Api]:
    with api_on(s3_settings) as api:
        yield api


def bucket_objects(settings: Settings) -> set[str]:
    assert settings.s3_bucket is not None
    listing = s3_server.client().list_objects_v2(Bucket=settings.s3_bucket, Prefix=PREFIX)
    return {item["Key"].removeprefix(PREFIX) for item in listing.get("Contents", [])}


def upload(api: Api, image: bytes) -> dict[str, str]:
    response = api.client.post(
        "/v1/images",
        params={"type": "auxiliaryType"},
        content=image,
        headers={**api.headers, "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def test_upload_content_links_and_delete_go_through_the_bucket(
    s3_api: Api, s3_settings: Settings
) -> None:
    image = imagefactory.jpeg(64, 48)
    sha256 = hashlib.sha256(image).hexdigest()

    body = upload(s3_api, image)

    assert body["sha256"] == sha256
    assert sha256 in bucket_objects(s3_settings)
    content = s3_api.client.get(f"/v1/images/{body['id']}/content", headers=s3_api.headers)
    assert content.status_code == 200
    assert content.content == image  # byte-exact original
    assert content.headers["content-length"] == str(len(image))
    signed = s3_api.client.get(body["url"])  # no headers: the signature is the authorisation
    assert (signed.status_code, signed.content) == (200, image)
    thumbnail = s3_api.client.get(body["thumbnailUrl"])
    assert thumbnail.status_code == 200
    assert hashlib.sha256(thumbnail.content).hexdigest() in bucket_objects(s3_settings)
    ready = s3_api.client.get("/readyz")
    assert (ready.status_code, ready.json()["blobStore"]) == (200, "ok")

    deleted = s3_api.client.delete(f"/v1/images/{body['id']}", headers=s3_api.headers)

    assert deleted.status_code == 204
    gone = s3_api.client.get(f"/v1/images/{body['id']}/content", headers=s3_api.headers)
    assert gone.status_code == 404
    assert bucket_objects(s3_settings) == set()  # no other image shared its bytes


def test_the_sweep_removes_only_unreferenced_blobs_from_the_bucket(
    s3_api: Api, s3_settings: Settings
) -> None:
    body = upload(s3_api, imagefactory.png(40, 30))
    blobs = s3_api.container.blobs
    orphan = blobs.put_bytes(b"bytes left behind by a crash").key
    referenced = bucket_objects(s3_settings) - {orphan}

    report = s3_api.container.sweeper.sweep()

    assert (report.examined, report.removed) == (len(referenced) + 1, 1)
    assert bucket_objects(s3_settings) == referenced
    with pytest.raises(NotFound):
        blobs.size(orphan)
    for link in ("url", "displayUrl", "thumbnailUrl"):
        assert s3_api.client.get(body[link]).status_code == 200


def test_loraforge_blobs_sweep_works_on_the_bucket(s3_api: Api, s3_settings: Settings) -> None:
    upload(s3_api, imagefactory.jpeg(32, 32))
    orphan = s3_api.container.blobs.put_bytes(b"unreferenced").key
    env = {
        "LORAFORGE_DATABASE_URL": s3_settings.resolved_database_url(),
        "LORAFORGE_BLOB_STORE": "s3",
        "LORAFORGE_S3_BUCKET": str(s3_settings.s3_bucket),
        "LORAFORGE_S3_ENDPOINT_URL": str(s3_settings.s3_endpoint_url),
        "LORAFORGE_S3_REGION": s3_server.REGION,
        "LORAFORGE_S3_PREFIX": PREFIX,
        "LORAFORGE_BLOB_SWEEP_GRACE_S": "0",
    }

    result = CliRunner().invoke(
        cli_app, ["blobs", "sweep", "--data-dir", str(s3_settings.data_dir)], env=env
    )

    assert result.exit_code == 0, (result.output, result.exception)
    assert "removed 1, removed 0 stale temp files" in result.stderr
    assert orphan not in bucket_objects(s3_settings)


def test_a_missing_bucket_answers_503(s3_settings: Settings) -> None:
    missing = s3_settings.model_copy(update={"s3_bucket": "no-such-bucket-for-loraforge"})
    with api_on(missing) as api:
        ready = api.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "unavailable"
        response = api.client.post(
            "/v1/images",
            params={"type": "auxiliaryType"},
            content=imagefactory.jpeg(16, 16),
            headers={**api.headers, "Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"


def test_a_bucket_endpoint_that_never_answers_gives_503_within_the_s3_timeout(
    s3_settings: Settings,
) -> None:
    """An S3 endpoint that accepts connections but answers nothing (a frozen proxy in front
    of the test server): uploads give up after 3 tries of ``LORAFORGE_S3_TIMEOUT_S`` each
    (botocore's default would be 60 s a try), /readyz after its own limit; then it heals."""
    endpoint = urlsplit(s3_server.endpoint_url())
    with FreezingProxy((endpoint.hostname or "127.0.0.1", endpoint.port or 80)) as proxy:
        hung = s3_settings.model_copy(
            update={"s3_endpoint_url": f"http://127.0.0.1:{proxy.port}", "s3_timeout_s": 1.0}
        )
        with api_on(hung) as api:

            def upload() -> httpx2.Response:
                return api.client.post(
                    "/v1/images",
                    params={"type": "auxiliaryType"},
                    content=imagefactory.jpeg(16, 16),
                    headers=api.headers,
                )

            proxy.freeze()
            try:
                for call in (upload, lambda: api.client.get("/readyz")):
                    response = within(3 * 1.0 + 7.0, call)  # 3 tries, backoff, slack
                    assert response.status_code == 503, response.text
                    assert response.headers["Retry-After"].isdigit()
            finally:
                proxy.thaw()
            assert upload().status_code == 201


def test_s3_without_a_bucket_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="LORAFORGE_S3_BUCKET"):
        Settings(data_dir=tmp_path, blob_store="s3")
