"""Event streams (SSE) over a real HTTP server: one poll per subject however many streams
follow it, a cap of open streams per account, and a clean end when the subject is deleted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import httpx
import pytest

from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.domain.entities import ALL_FORMATS, ImageKind
from loraforge.domain.work import TrainingSpeed
from loraforge.http.event_hub import EventHub
from loraforge.services.images import Upload
from loraforge.settings import Settings
from tests import imagefactory
from tests.dialects.conftest import serve

POLL_S = 0.05
WAIT_S = 10.0


@dataclass
class Followed:
    """A queued training (no worker runs it) on a live server, and its account's key."""

    container: Container
    hub: EventHub
    base_url: str
    key: str
    url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@contextlib.contextmanager
def following(settings: Settings, **update: Any) -> Iterator[Followed]:
    container = build(settings.model_copy(update={"event_poll_s": POLL_S, **update}))
    try:
        key = container.keys.create(name="t").plaintext
        who = container.keys.authenticate(key)
        model = container.models.create(who, display_name="m")
        container.images.ingest(
            who,
            Upload(stream=BytesIO(imagefactory.png(32, 32))),
            kind=ImageKind.TRAINING,
            model_id=model.id,
            allowed=ALL_FORMATS,
        )
        training = container.trainings.start(who, model.id, strength=0, speed=TrainingSpeed.FAST)
        app = create_app(container=container)
        with serve(app) as port:
            url = f"/v1/models/{model.id}/trainings/{training.id}/events"
            yield Followed(container, app.state.event_hub, f"http://127.0.0.1:{port}", key, url)
    finally:
        container.close()


def events_of(text: str) -> list[tuple[str, Any]]:
    """``(event, data)`` of each complete event in an SSE body (comments skipped)."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)  # polling another thread's state; there is no event to await


def test_many_streams_of_one_training_share_one_poll(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams, window_s = 20, 1.0
    with following(settings) as f:
        reads: list[float] = []
        real_get = f.container.trainings.get

        def counting_get(*args: Any, **kwargs: Any) -> Any:
            reads.append(time.monotonic())
            return real_get(*args, **kwargs)

        monkeypatch.setattr(f.container.trainings, "get", counting_get)

        async def follow() -> int:
            async with (
                httpx.AsyncClient(base_url=f.base_url, headers=f.headers, timeout=WAIT_S) as client,
                contextlib.AsyncExitStack() as stack,
            ):
                readers = []  # kept: an abandoned line iterator closes its connection
                for _ in range(streams):
                    response = await stack.enter_async_context(client.stream("GET", f.url))
                    assert response.status_code == 200
                    readers.append(response.aiter_lines())
                    assert await anext(readers[-1]) == "event: update"
                assert f.hub.subjects == 1
                before = len(reads)
                await asyncio.sleep(window_s)  # measuring a rate: reads during this window
                return len(reads) - before

        polled = asyncio.run(follow())

        # One poller: about window/poll reads (fewer on a busy machine), not one per stream.
        assert 1 <= polled <= window_s / POLL_S + 3, polled
        wait_for(lambda: f.hub.subjects == 0, "the poller did not stop after the last stream")


def test_streams_per_account_are_capped_with_429(settings: Settings) -> None:
    with (
        following(settings, max_event_streams=2) as f,
        httpx.Client(base_url=f.base_url, timeout=WAIT_S) as client,
    ):
        with client.stream("GET", f.url, headers=f.headers) as first:
            assert first.status_code == 200
            with client.stream("GET", f.url, headers=f.headers) as second:
                assert second.status_code == 200
                third = client.get(f.url, headers=f.headers)
                assert third.status_code == 429, third.text
                assert third.json()["error"]["code"] == "rate_limited"
                assert 1 <= int(third.headers["retry-after"]) <= 60
                # Other requests of the account are not affected.
                assert client.get(f.url.removesuffix("/events"), headers=f.headers).is_success

        # Closed streams give their slots back.
        def opens() -> bool:
            with client.stream("GET", f.url, headers=f.headers) as again:
                return again.status_code == 200

        wait_for(opens, "closed streams did not give their slots back")


def test_a_training_deleted_mid_stream_ends_with_a_final_event(settings: Settings) -> None:
    with (
        following(settings) as f,
        httpx.Client(base_url=f.base_url, headers=f.headers, timeout=WAIT_S) as client,
        client.stream("GET", f.url) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == "event: update"
        deleted = client.delete(f.url.removesuffix("/events"))
        assert deleted.status_code == 204
        # httpx raises RemoteProtocolError on a chunked body cut off without its last chunk.
        rest = "\n".join(lines)

    last_event, last_data = events_of("event: update\n" + rest)[-1]
    assert last_event == "error"
    assert last_data["error"]["code"] == "not_found"
