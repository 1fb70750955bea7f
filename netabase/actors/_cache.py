"""The per-store LRU cache of decoded records.

Write-through: the owning actor updates it only after a write is durable, so it never serves a
value older than the last acknowledged write of this process. ``version`` is the backend space
version its contents reflect; a read that finds another version (another process, or another
actor's cascade, wrote the space) clears it. ``generation`` changes on every mutation, so a fill
from a read that raced with a write can be refused, and so can hits taken before such a read.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class RecordCache:
    """Bounded LRU of key bytes -> record; ``capacity`` 0 disables caching."""

    __slots__ = ("_entries", "capacity", "generation", "hits", "misses", "version")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, Any] = OrderedDict()
        self.version: int | None = None
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: bytes) -> Any:
        """The cached record, or None (counted as a hit or a miss)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def fill(self, key: bytes, record: Any) -> None:
        """Remember a record read from the backend."""
        if self.capacity <= 0:
            return
        entries = self._entries
        entries[key] = record
        entries.move_to_end(key)
        if len(entries) > self.capacity:
            entries.popitem(last=False)

    def store(self, key: bytes, record: Any) -> None:
        """Write-through of an acknowledged write."""
        self.generation += 1
        self.fill(key, record)

    def discard(self, key: bytes) -> None:
        self.generation += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def after_write(self, before: int, after: int) -> None:
        """Follow the space version across a write of this process; clear if another wrote too."""
        if self.version == after:
            return
        if self.version != before:
            self.clear()
        self.version = after

    def validate(self, version: int) -> bool:
        """Adopt the version a read observed; False (and cleared) if the cache was stale."""
        if self.version == version:
            return True
        if self.version is not None:
            self.clear()
        self.version = version
        return False
