"""Snapshots: reads of many calls from one point in time, for transactions.

`Backend.snapshot` returns one. LMDB keeps a read transaction open, memory keeps the values
overwritten since (copy-on-write by undo), and a backend without snapshots (Redis) returns a
`LiveSnapshot` that reads the current state (``isolated`` False): a transaction then relies on
validating what it read when it commits, which is what makes it serializable in every case.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._base import Backend


class SnapshotLost(Exception):
    """The backend had to end the snapshot (an LMDB map resize); the reader starts again."""


class Snapshot(abc.ABC):
    """Reads at one point in time until `close` (idempotent)."""

    isolated: bool = True
    """Whether every read sees the same point in time."""

    @abc.abstractmethod
    async def read(self, space: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` (None when absent)."""

    @abc.abstractmethod
    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        """Pairs with ``lo <= key < hi`` in key order (largest first with ``reverse``)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the snapshot holds."""


class LiveSnapshot(Snapshot):
    """No isolation: each call reads the backend as it is now."""

    isolated = False

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def read(self, space: str, keys: Sequence[bytes]) -> list[bytes | None]:
        _, values = await self._backend.read(space, keys)
        return values

    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        return await self._backend.scan(space, lo, hi, limit=limit, reverse=reverse)

    def close(self) -> None:
        pass
