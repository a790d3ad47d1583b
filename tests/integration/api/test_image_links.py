"""GET /v1/images/{id}/content: signed, expiring links that need no headers, and keyed reads."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api, serving

TTL_S = 600


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2030, 6, 1, 12, 0, 30, tzinfo=UTC))  # mid-minute


@pytest.fixture
def clocked_api(settings: Settings, clock: FakeClock) -> Iterator[Api]:
    with serving(settings.model_copy(update={"signed_url_ttl_s": TTL_S}), clock=clock) as api:
        yield api


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


def with_query(url: str, **changes: str) -> str:
    """The same link with some query parameters replaced (or removed when given "")."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value:
            query[name] = value
        else:
            query.pop(name, None)
    return parts._replace(query=urlencode(query)).geturl()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_forbidden(response: httpx2.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    assert response.json()["error"]["message"]
    assert not response.headers["content-type"].startswith("image/")


def test_the_url_serves_the_original_bytes_without_any_headers(api: Api) -> None:
    original = imagefactory.jpeg(48, 32, with_gps=True, with_metadata=True)
    image = upload(api, original)

    response = api.client.get(image["url"])  # no API key

    assert response.status_code == 200, response.text
    assert response.content == original
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-length"] == str(len(original))
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_url_is_on_the_content_route_of_the_image(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))

    parts = urlsplit(image["url"])

    assert parts.path == f"/v1/images/{image['id']}/content"
    assert set(query_of(image["url"])) == {"variant", "expires", "sig"}
    assert query_of(image["url"])["variant"] == "original"
    assert "lf_" not in image["url"]  # the API key never ends up in a link


def test_display_and_thumbnail_links_serve_clean_derived_images(api: Api) -> None:
    original = imagefactory.jpeg(600, 300, exif_orientation=6, with_gps=True, with_metadata=True)
    image = upload(api, original)

    display = api.client.get(image["displayUrl"])
    thumbnail = api.client.get(image["thumbnailUrl"])

    for response in (display, thumbnail):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("image/")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content != original
    with Image.open(io.BytesIO(display.content)) as shown:
        assert shown.size == (300, 600)  # orientation applied
        assert not shown.getexif()  # no EXIF (GPS included) in what is served
        assert "icc_profile" not in shown.info
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        assert max(thumb.size) <= 256
        assert thumb.size[1] > thumb.size[0]


def test_content_can_be_read_with_the_api_key_instead_of_a_signature(api: Api) -> None:
    original = imagefactory.webp(16, 16)
    image = upload(api, original)
    path = f"/v1/images/{image['id']}/content"

    keyed = api.client.get(path, headers=api.headers)
    thumbnail = api.client.get(path, params={"variant": "thumbnail"}, headers=api.headers)

    assert keyed.status_code == 200
    assert keyed.content == original
    assert keyed.headers["x-content-type-options"] == "nosniff"
    assert thumbnail.status_code == 200
    assert thumbnail.content == api.client.get(image["thumbnailUrl"]).content


def test_content_without_a_key_or_a_signature_is_401(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))

    response = api.client.get(f"/v1/images/{image['id']}/content")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_content_of_another_accounts_image_is_404_with_a_key(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))

    response = api.client.get(f"/v1/images/{image['id']}/content", headers=api.new_account())

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_tampered_signature_is_403(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))
    sig = query_of(image["url"])["sig"]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]

    assert_forbidden(api.client.get(with_query(image["url"], sig=flipped)))
    assert_forbidden(api.client.get(with_query(image["url"], sig=sig[:-1])))
    assert_forbidden(api.client.get(with_query(image["url"], sig="x")))


def test_a_changed_variant_is_403(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))

    thumbnail_with_original_sig = with_query(image["url"], variant="thumbnail")
    original_with_thumbnail_sig = with_query(image["thumbnailUrl"], variant="original")

    assert_forbidden(api.client.get(thumbnail_with_original_sig))
    assert_forbidden(api.client.get(original_with_thumbnail_sig))


def test_a_changed_expiry_is_403(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))
    expires = int(query_of(image["url"])["expires"])

    assert_forbidden(api.client.get(with_query(image["url"], expires=str(expires + 3600))))
    assert_forbidden(api.client.get(with_query(image["url"], expires=str(expires - 60))))
    assert_forbidden(api.client.get(with_query(image["url"], expires="")))


def test_a_signature_without_an_expiry_or_the_reverse_is_403(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))

    no_sig = with_query(image["url"], sig="")

    assert_forbidden(api.client.get(no_sig))
    assert_forbidden(api.client.get(with_query(image["url"], expires="")))


def test_a_signature_is_bound_to_its_image(api: Api) -> None:
    first = upload(api, imagefactory.png(8, 8))
    second = upload(api, imagefactory.png(9, 9))

    swapped = first["url"].replace(first["id"], second["id"])

    assert_forbidden(api.client.get(swapped))


def test_an_unknown_variant_is_422(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))

    response = api.client.get(with_query(image["url"], variant="raw"))

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "variant"


def test_an_expired_link_is_403(clocked_api: Api, clock: FakeClock) -> None:
    api = clocked_api
    original = imagefactory.png(8, 8)
    image = upload(api, original)
    expires = int(query_of(image["url"])["expires"])
    issued_at = clock.current.timestamp()
    assert issued_at + TTL_S <= expires < issued_at + TTL_S + 60

    clock.current = datetime.fromtimestamp(expires, UTC)
    assert api.client.get(image["url"]).content == original  # still valid at its expiry

    clock.current += timedelta(seconds=1)
    assert_forbidden(api.client.get(image["url"]))
    assert_forbidden(api.client.get(image["thumbnailUrl"]))

    fresh = api.client.get(f"/v1/images/{image['id']}", headers=api.headers).json()
    assert int(query_of(fresh["url"])["expires"]) > expires
    assert api.client.get(fresh["url"]).content == original


def test_links_issued_in_the_same_minute_are_identical(clocked_api: Api, clock: FakeClock) -> None:
    api = clocked_api
    image = upload(api, imagefactory.png(8, 8))
    clock.current += timedelta(seconds=20)  # 12:00:50, still the minute of the upload

    again = api.client.get(f"/v1/images/{image['id']}", headers=api.headers).json()

    assert again["url"] == image["url"]
    assert again["thumbnailUrl"] == image["thumbnailUrl"]


def test_a_link_stops_working_when_the_image_is_deleted(api: Api) -> None:
    image = upload(api, imagefactory.png(8, 8))
    assert api.client.delete(f"/v1/images/{image['id']}", headers=api.headers).status_code == 204

    response = api.client.get(image["url"])

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_links_honour_the_public_url_setting(settings: Settings) -> None:
    container = build(settings.model_copy(update={"public_url": "https://img.example.com/lf/"}))
    try:
        with TestClient(create_app(container=container)) as client:
            api = Api(
                client=client, container=container, key=container.keys.create(name="t").plaintext
            )
            image = upload(api, imagefactory.png(8, 8))
    finally:
        container.close()

    assert image["url"].startswith(f"https://img.example.com/lf/v1/images/{image['id']}/content?")
