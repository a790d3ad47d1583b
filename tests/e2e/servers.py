"""Starting ``loraforge serve`` in its own process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path

    @property
    def key(self) -> str:
        return (self.data_dir / "dev-api-key").read_text().strip()

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a service manager would send it; returns (exit code, stderr)."""
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=STOP_TIMEOUT_S)
        return self.process.returncode, err.decode(errors="replace")


def wait_until_up(server: Server) -> None:
    """Poll /healthz until it answers; fail early if the process died."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                _, err = server.process.communicate()
                pytest.fail(f"server exited with {server.process.returncode}: {err.decode()}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # poll interval while the process starts
    pytest.fail(f"server did not answer within {START_TIMEOUT_S} s")


@contextmanager
def serving(data_dir: Path, database_url: str, **env: str) -> Iterator[Server]:
    """``python -m loraforge serve`` on a free port, up and answering; killed afterwards."""
    port = free_port()
    environment = {
        **os.environ,
        "LORAFORGE_DATABASE_URL": database_url,
        "LORAFORGE_LOG_LEVEL": "warning",
        **env,
    }
    command = [sys.executable, "-m", "loraforge", "serve"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(data_dir), "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    running = Server(process=process, base_url=f"http://127.0.0.1:{port}", data_dir=data_dir)
    try:
        wait_until_up(running)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=STOP_TIMEOUT_S)
