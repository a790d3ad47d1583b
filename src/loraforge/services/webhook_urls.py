"""Early validation of webhook URLs (the SSRF checks happen again on every delivery)."""

from __future__ import annotations

from urllib.parse import urlsplit

from loraforge.domain.errors import InvalidInput

MAX_URL = 2048


def check_webhook_url(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidInput("webhookUrl is not a valid URL.", field="webhookUrl") from exc
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("webhookUrl must be an http(s) URL.", field="webhookUrl")
    if parts.username or parts.password:
        raise InvalidInput("webhookUrl must not carry credentials.", field="webhookUrl")
