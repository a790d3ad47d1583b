"""A TCP proxy that a test can freeze: a server that accepts connections but never answers.

``freeze()`` stops forwarding in both directions while every socket stays open, and new
connections are accepted but not forwarded: to its clients the server behind looks hung (the
kernel still acknowledges what they send, so TCP-level timeouts never fire). ``thaw()`` resumes
forwarding, and connections made while frozen reach the server then. The proxy runs its own
asyncio loop in a daemon thread.

``within`` runs a call against such a server with a time limit, failing instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536
CALL_TIMEOUT_S = 10.0


class FreezingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thawed: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> FreezingProxy:
        self._thread.start()
        self.port = self._call(self._start())
        return self

    def __exit__(self, *_: object) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_S)
        self._loop.close()

    def freeze(self) -> None:
        self._call(self._set_thawed(False))

    def thaw(self) -> None:
        self._call(self._set_thawed(True))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT_S)

    async def _set_thawed(self, thawed: bool) -> None:
        assert self._thawed is not None
        if thawed:
            self._thawed.set()
        else:
            self._thawed.clear()

    async def _start(self) -> int:
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        # Handlers still waiting for a thaw would wait for ever: end them.
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        assert self._thawed is not None
        writers = [client_w]
        self._writers.add(client_w)
        try:
            await self._thawed.wait()  # accepted, but a frozen server never answers
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
            writers.append(upstream_w)
            self._writers.add(upstream_w)
            pumps = [
                asyncio.create_task(self._pump(client_r, upstream_w)),
                asyncio.create_task(self._pump(upstream_r, client_w)),
            ]
            try:
                # Either side closing ends the connection on both sides.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
        except (OSError, asyncio.CancelledError):
            # Cancelled by __exit__: end quietly (asyncio's stream server logs a handler that
            # ends cancelled as an error).
            pass
        finally:
            for writer in writers:
                self._writers.discard(writer)
                with suppress(OSError):
                    writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._thawed is not None
        with suppress(OSError):
            while data := await reader.read(CHUNK):
                await self._thawed.wait()  # hold what arrived until the thaw
                writer.write(data)
                await writer.drain()


def within(limit_s: float, call: Callable[[], T]) -> T:
    """``call()``'s result, failing the test when it takes ``limit_s`` or longer. It runs in a
    daemon thread, so a regression fails here instead of hanging the test run."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test's thread below
            failure.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit_s)
    assert not worker.is_alive(), f"no answer within {limit_s:.1f} s"
    if failure:
        raise failure[0]
    assert time.monotonic() - started < limit_s
    return outcome[0]
