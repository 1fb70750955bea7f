"""Reading a whole range of a space, a page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator

from .._keys import component_range
from ..backends import Backend

PAGE = 1000


async def pages(
    backend: Backend, space: str, lo: bytes, upper: bytes | None
) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """The rows of ``space`` from ``lo`` up to ``upper`` (None: the end), a page at a time."""
    while True:
        page = await backend.scan(space, lo, upper, limit=PAGE)
        yield page
        if len(page) < PAGE:
            return
        lo = page[-1][0] + b"\x00"


async def scan_prefix(backend: Backend, space: str, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """Every row whose leading elements are ``prefix`` (complete elements: names, object ids)."""
    lo, upper = component_range(prefix)
    return [row async for page in pages(backend, space, lo, upper) for row in page]
