"""Running URL uploads: admitted at once or refused, then on threads apart from the API's.

FastAPI's sync work (every ``run_in_threadpool``: database calls, decodes of other uploads)
shares anyio's default pool of 40 threads. A URL upload holds its thread for as long as the
upstream takes, so 45 slow URLs of one account once made ``GET /v1/models`` wait 43 s. Here a
fetch slot is taken first (``RateLimited`` 429 / ``Unavailable`` 503 with ``Retry-After``,
never a queue), and the upload runs on the container's ``fetch_threads`` limiter, as large as
the process's slots, so it never waits for a thread and never takes one of the default pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from anyio import to_thread

from loraforge.bootstrap import Container
from loraforge.domain.entities import Principal
from loraforge.services.fetch_slots import FetchPermit

T = TypeVar("T")


async def run_url_upload(c: Container, who: Principal, work: Callable[[FetchPermit], T]) -> T:
    """``work(permit)`` on a fetch thread once admitted; the permit is freed when it ends."""
    with c.images.admit_fetch(who) as permit:
        return await to_thread.run_sync(lambda: work(permit), limiter=c.fetch_threads)
