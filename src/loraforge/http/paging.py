"""The ``pageNum`` / ``pageSize`` query parameters every page-number listing takes.

``services.paging.page_request`` checks the bounds (422 ``invalid_request`` naming the field, in
every wire format); the schema extras only publish them in the OpenAPI documents, so that the
answer stays the service's, whatever layer a client trips. ``pageSize``'s maximum is a setting:
``http.openapi`` writes it into the document when the document is built.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from loraforge.services.paging import MAX_PAGE_NUM

PageNum = Annotated[
    int,
    Query(
        alias="pageNum",
        description="The page to read, from 1.",
        json_schema_extra={"minimum": 1, "maximum": MAX_PAGE_NUM},
    ),
]
PageSize = Annotated[
    int,
    Query(
        alias="pageSize",
        description="Items per page, 1 to `LORAFORGE_MAX_PAGE_SIZE` (default 100).",
        json_schema_extra={"minimum": 1, "maximum": 100},
    ),
]
