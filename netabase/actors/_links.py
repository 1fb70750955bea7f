"""Link bookkeeping shared by the planners: `Referrer` and the validation cache `LinkCache`.

The reverse index's space and entry format live in `netabase._layout`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple


class Referrer(NamedTuple):
    """A record that links to another: its model name, the link field, and its key."""

    model: str
    field: str
    key: Any


class LinkCache:
    """Positive existence answers an actor got from target stores, bounded LRU per target.

    Target actors invalidate entries synchronously when they delete, before acknowledging the
    delete. ``generation`` lets an answer that raced with an invalidation be dropped instead of
    cached. A stale positive answer can only cost a retry: the write still carries an existence
    condition that the backend checks atomically.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._known: dict[str, OrderedDict[bytes, None]] = {}
        self.generation: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    def knows(self, model: str, key: bytes) -> bool:
        known = self._known.get(model)
        if known is not None and key in known:
            known.move_to_end(key)
            self.hits += 1
            return True
        self.misses += 1
        return False

    def remember(self, model: str, keys: list[bytes], generation: int) -> None:
        if self.capacity <= 0 or self.generation.get(model, 0) != generation:
            return
        known = self._known.setdefault(model, OrderedDict())
        for key in keys:
            known[key] = None
            known.move_to_end(key)
        while len(known) > self.capacity:
            known.popitem(last=False)

    def forget(self, model: str, keys: Any) -> None:
        self.generation[model] = self.generation.get(model, 0) + 1
        known = self._known.get(model)
        if known is not None:
            for key in keys:
                known.pop(key, None)
