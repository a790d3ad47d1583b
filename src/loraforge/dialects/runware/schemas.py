"""Runware task shapes (seed 002, reference/sdk_contracts.md PART B).

Clients send a JSON array of task objects; the server answers JSON objects ``{"data": [...]}``
and/or ``{"errors": [...]}`` (never a bare array, never an empty ``data`` list), each item
carrying the request's ``taskType`` and ``taskUUID`` so the client can match it.

Requests (unknown fields are ignored)::

    {"taskType": "authentication", "apiKey": "<key>", "connectionSessionUUID"?: "<uuid>"}
    {"taskType": "ping", "ping": true}
    {"taskType": "imageUpload", "taskUUID": "<uuid v4>", "image": "<data URI | base64 | URL>"}

Results (items of ``data``)::

    {"taskType": "authentication", "connectionSessionUUID": "<uuid>"}
    {"taskType": "ping", "pong": true}
    {"taskType": "imageUpload", "taskUUID": "<uuid>", "imageUUID": "<core Image id>",
     "imageURL": "<signed link to the display variant, at most 2048 px on its long side>"}
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

AUTHENTICATION = "authentication"
PING = "ping"
IMAGE_UPLOAD = "imageUpload"


class ErrorItem(TypedDict):
    code: str
    message: str
    taskType: NotRequired[str]
    taskUUID: NotRequired[str]
    parameter: NotRequired[str]
    type: NotRequired[str]
    retryAfter: NotRequired[int]  # seconds, on 429 / 503 (the HTTP answer's Retry-After too)


# The SDK recognises an authentication failure by ``taskType == "authentication"`` and shows
# ``message``; this is the vendor's own wording (reference/sdk_contracts.md B.1).
INVALID_API_KEY: ErrorItem = {
    "code": "invalidApiKey",
    "message": "Invalid API key. Get one at https://my.runware.ai/signup",
    "parameter": "apiKey",
    "type": "string",
    "taskType": AUTHENTICATION,
}
