"""Images inside JSON: data URIs, bare and url-safe base64, sizes checked before decoding."""

from __future__ import annotations

import base64

import pytest

from loraforge.domain.errors import BadRequest, PayloadTooLarge, UnsupportedFormat
from loraforge.services.inline_images import decode_inline, is_url
from tests import imagefactory

PNG = imagefactory.png(8, 8)
B64 = base64.b64encode(PNG).decode()
LIMIT = 1024 * 1024


@pytest.mark.parametrize(
    "value",
    [
        f"data:image/png;base64,{B64}",
        f"DATA:IMAGE/PNG;BASE64,{B64}",
        f"data:image/jpeg;charset=binary;base64,{B64}",
        f"data:application/octet-stream;base64,{B64}",
        f"data:;base64,{B64}",
        B64,
        "\n".join(B64[i : i + 76] for i in range(0, len(B64), 76)),  # MIME line breaks
        f"  {B64}  ",
    ],
)
def test_accepted_forms_decode_to_the_bytes(value: str) -> None:
    assert decode_inline(value, max_bytes=LIMIT) == PNG


def test_url_safe_base64_is_accepted() -> None:
    data = bytes(range(256)) * 3  # encodes to both '+' and '/' in the standard alphabet
    standard = base64.b64encode(data).decode()
    assert "+" in standard
    assert "/" in standard
    url_safe = base64.urlsafe_b64encode(data).decode()
    assert decode_inline(url_safe, max_bytes=LIMIT) == data
    assert decode_inline(f"data:image/png;base64,{url_safe}", max_bytes=LIMIT) == data


@pytest.mark.parametrize(
    "value",
    [
        B64.rstrip("="),  # padding dropped
        "abc",  # length not a multiple of 4
        "ab=c",  # padding in the middle
        "ab===",  # too much padding
        "abcd=",  # padding after a complete group
        "abcd====",  # a whole group of padding
        "not base64 at all!",
        "data:image/png,notbase64",  # a data URI without ;base64
        "data:image/png;base64",  # no comma
        "",  # empty
        "====",  # decodes to nothing
    ],
)
def test_malformed_values_are_bad_requests(value: str) -> None:
    with pytest.raises(BadRequest):
        decode_inline(value, max_bytes=LIMIT)


def test_the_padding_case_above_really_drops_padding() -> None:
    assert B64.endswith("=")


@pytest.mark.parametrize(
    "media_type",
    ["image/svg+xml", "text/plain", "text/html", "application/pdf", "image/x-icon", "video/mp4"],
)
def test_non_raster_media_types_are_unsupported(media_type: str) -> None:
    with pytest.raises(UnsupportedFormat):
        decode_inline(f"data:{media_type};base64,{B64}", max_bytes=LIMIT)


def test_svg_bytes_in_a_data_uri_are_refused_by_type() -> None:
    svg = base64.b64encode(imagefactory.svg()).decode()
    with pytest.raises(UnsupportedFormat):
        decode_inline(f"data:image/svg+xml;base64,{svg}", max_bytes=LIMIT)


def test_oversize_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_decode(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("decoded an oversize payload")

    monkeypatch.setattr(base64, "b64decode", must_not_decode)
    huge = "A" * (4 * 1024 * 1024)
    with pytest.raises(PayloadTooLarge):
        decode_inline(huge, max_bytes=1024 * 1024)
    with pytest.raises(PayloadTooLarge):
        decode_inline(f"data:image/png;base64,{huge}", max_bytes=1024 * 1024)


def test_exact_limit_is_accepted_and_one_byte_more_is_not() -> None:
    data = b"\x89PNG" + b"x" * 996
    assert decode_inline(base64.b64encode(data).decode(), max_bytes=1000) == data
    with pytest.raises(PayloadTooLarge):
        decode_inline(base64.b64encode(data + b"y").decode(), max_bytes=1000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://example.com/a.png", True),
        ("HTTPS://example.com/a.png", True),
        ("ftp://example.com/a.png", False),
        ("data:image/png;base64,AAAA", False),
        ("httpx://nope", False),
        (B64, False),
    ],
)
def test_is_url(value: str, expected: bool) -> None:
    assert is_url(value) is expected
