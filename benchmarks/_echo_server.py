"""The bare-HTTP baseline: the same uvicorn as ``loraforge serve``, an app that only drains
the request body. ``python -m benchmarks._echo_server --port N`` (run from the repository root).
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def sink(request: Request) -> JSONResponse:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return JSONResponse({"bytes": size}, status_code=201)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/upload", sink, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # The same uvicorn.run arguments as `loraforge serve` (cli/main.py), so the same HTTP
    # implementation and event loop are picked.
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level=args.log_level, proxy_headers=False
    )


if __name__ == "__main__":
    main()
