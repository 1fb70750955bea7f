"""Every row of a permission space under a prefix of whole elements (names, object ids)."""

from __future__ import annotations

from .._keys import component_range
from ..backends import Backend
from ..backends._paging import scan_pages


async def scan_prefix(backend: Backend, space: str, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """Every row whose leading elements are ``prefix`` (complete elements: names, object ids)."""
    lo, upper = component_range(prefix)
    return [row async for page in scan_pages(backend, space, lo, upper) for row in page]
