"""Images that arrive inside JSON: data URIs, bare base64, or URLs to fetch."""

from __future__ import annotations

import base64
import binascii
import re

from loraforge.domain.errors import BadRequest, PayloadTooLarge, UnsupportedFormat

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,", re.I)
# Media types a data URI may declare. The bytes decide the real format later; this only turns
# away what is clearly not a raster image (SVG, HTML, PDF...).
_IMAGE_MIMES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/jpg",
        "image/webp",
        "image/heic",
        "image/heif",
        "image/bmp",
        "image/gif",
        "application/octet-stream",
    }
)


def is_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


def decode_inline(value: str, *, max_bytes: int) -> bytes:
    """Decode a data URI or bare base64 string, checking the size before decoding."""
    payload = value
    match = _DATA_URI.match(value)
    if match:
        mime = (match.group("mime") or "application/octet-stream").lower()
        if mime not in _IMAGE_MIMES:
            raise UnsupportedFormat(f"Media type {mime} is not an accepted image type.")
        payload = value[match.end() :]
    elif value[:5].lower() == "data:":
        raise BadRequest("A data URI must be of the form data:<mediaType>;base64,<data>.")
    # 4 base64 characters carry 3 bytes: refuse before allocating the decoded buffer.
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:
        raise PayloadTooLarge(f"The image is larger than {max_bytes} bytes.")
    compact = "".join(payload.split())
    # Python's strict decoder still accepts '=' after a complete group ("abcd=", "abcd====").
    if len(compact) % 4 or compact.endswith("==="):
        raise BadRequest("The image is not valid base64 (bad padding).")
    try:
        alphabet = b"-_" if ("-" in compact or "_" in compact) else None  # url-safe variant
        data = base64.b64decode(compact, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("The image is not valid base64.") from exc
    if not data:
        raise BadRequest("The image is empty.")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The image is larger than {max_bytes} bytes.")
    return data
