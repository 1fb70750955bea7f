"""`scan_pages`: a key range of one space read a page at a time, each page one backend scan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._base import Backend

PAGE = 1000
"""Rows per backend scan when the caller does not say."""


async def scan_pages(
    backend: Backend,
    space: str,
    lo: bytes = b"",
    hi: bytes | None = None,
    *,
    page: int = PAGE,
    reverse: bool = False,
) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """The (key, value) pairs with ``lo <= key < hi`` (``hi`` None: to the end), in pages of at
    most ``page`` rows, in key order (largest first with ``reverse``). Each page is consistent
    in itself; the whole range is not a snapshot."""
    while True:
        rows = await backend.scan(space, lo, hi, limit=page, reverse=reverse)
        if rows:
            yield rows
        if len(rows) < page:
            return
        if reverse:
            hi = rows[-1][0]
        else:
            lo = rows[-1][0] + b"\x00"
