"""A real S3-compatible endpoint for tests: moto's HTTP server on a free loopback port.

Started once per test process (each xdist worker has its own) and stopped at exit. Tests keep
apart by using a bucket of their own (``new_bucket``), never by sharing keys. The store under
test finds its credentials through the standard AWS chain, so fixtures put ``CREDENTIALS`` in
the environment (moto accepts any).
"""

from __future__ import annotations

import atexit
import socket
import uuid
from functools import cache
from typing import TYPE_CHECKING

import boto3
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "loraforge-test",
    "AWS_SECRET_ACCESS_KEY": "loraforge-test-secret",
    # Keep a developer's own AWS profile and files out of the tests.
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@cache
def endpoint_url() -> str:
    # Port 0: the OS picks a free one, so parallel test processes never collide.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once the server is bound and listening
    atexit.register(server.stop)
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


@cache
def client() -> S3Client:
    """A client of the test server for setting up and inspecting buckets directly."""
    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    return session.client("s3", endpoint_url=endpoint_url())


def new_bucket() -> str:
    """A fresh, empty bucket on the test server."""
    name = f"test-{uuid.uuid4().hex}"
    client().create_bucket(Bucket=name)
    return name


def closed_port_url() -> str:
    """An endpoint nothing listens on: a store that is down."""
    return f"http://127.0.0.1:{_free_port()}"
