"""Page-number paging, validated the same way for every listing."""

from __future__ import annotations

from dataclasses import dataclass

from loraforge.domain.errors import InvalidInput


@dataclass(frozen=True)
class PageRequest:
    page_num: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page_num - 1) * self.page_size


def page_request(page_num: int, page_size: int, *, max_page_size: int) -> PageRequest:
    if page_num < 1:
        raise InvalidInput("pageNum must be 1 or more.", field="pageNum")
    if not 1 <= page_size <= max_page_size:
        raise InvalidInput(f"pageSize must be between 1 and {max_page_size}.", field="pageSize")
    return PageRequest(page_num=page_num, page_size=page_size)
