"""Page-number paging, validated the same way for every listing."""

from __future__ import annotations

from dataclasses import dataclass

from loraforge.domain.errors import InvalidInput

# The databases take a signed 64-bit OFFSET; a page number whose offset passes it used to end in
# an OverflowError (500). A billion pages is far beyond any account, and keeps the offset below
# 2**63 for any page size up to 9 * 10**9.
MAX_PAGE_NUM = 1_000_000_000
MAX_OFFSET = 2**62


@dataclass(frozen=True)
class PageRequest:
    page_num: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page_num - 1) * self.page_size


def page_request(page_num: int, page_size: int, *, max_page_size: int) -> PageRequest:
    if not 1 <= page_num <= MAX_PAGE_NUM:
        raise InvalidInput(f"pageNum must be between 1 and {MAX_PAGE_NUM}.", field="pageNum")
    if not 1 <= page_size <= max_page_size:
        raise InvalidInput(f"pageSize must be between 1 and {max_page_size}.", field="pageSize")
    page = PageRequest(page_num=page_num, page_size=page_size)
    if page.offset > MAX_OFFSET:
        raise InvalidInput("pageNum * pageSize is too large.", field="pageNum")
    return page
