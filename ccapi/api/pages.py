"""Paged lists: the `limit`/`offset` query parameters and the list envelope
that every listing route (catalog and admin) shares."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

MAX_LIMIT = 1000
# Past the last item a page is simply empty; the bound keeps offsets within
# what a 64-bit database column and a JSON number (2**53 - 1) hold exactly.
MAX_OFFSET = 2**53 - 1

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (max {MAX_LIMIT}).")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


def page(data: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(data) < total,
    }
