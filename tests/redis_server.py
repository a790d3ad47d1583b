"""A real Redis for tests: ``LORAFORGE_TEST_REDIS_URL`` or the local server at 127.0.0.1:6379.

Where none answers, a throwaway ``redis-server`` (no persistence) is started from the system's
binaries for this test process; where that is impossible the tests fail. Tests keep apart by
using a Celery queue name of their own, not a database number.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time
from functools import cache

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_throwaway_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "Redis is not reachable and redis-server is not installed; "
            "install redis-server or set LORAFORGE_TEST_REDIS_URL"
        )
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        process.wait(10)

    atexit.register(stop)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("a throwaway redis-server did not start")
        time.sleep(0.05)
    return url


@cache
def redis_url() -> str:
    url = os.environ.get("LORAFORGE_TEST_REDIS_URL", DEFAULT_URL)
    return url if _answers(url) else _start_throwaway_server()


def closed_port_url() -> str:
    """A Redis URL nothing listens on: a broker that is down."""
    return f"redis://127.0.0.1:{_free_port()}/0"
