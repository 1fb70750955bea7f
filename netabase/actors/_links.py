"""Link bookkeeping shared by the planners: reverse-index keys and the validation cache.

The reverse index of a target model T lives in space ``~ref.T``. An entry says "record ``sk`` of
model S names ``tk`` in field f"; its key is ``H(tk) + H(S, f, sk)`` with ``H`` a 16-byte BLAKE2b
digest, so all referrers of ``tk`` share a fixed 16-byte prefix and every entry key is 32 bytes
whatever the key sizes (LMDB's 511-byte limit applies to index keys too). The value holds S, f and
``sk`` in full.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, NamedTuple

import msgpack

DIGEST = 16


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST).digest()


def ref_prefix(target_key: bytes) -> bytes:
    """The prefix every reverse-index entry of ``target_key`` starts with."""
    return _digest(target_key)


def ref_key(target_key: bytes, source: str, field: str, source_key: bytes) -> bytes:
    origin = source.encode() + b"\x00" + field.encode() + b"\x00" + source_key
    return _digest(target_key) + _digest(origin)


def ref_value(source: str, field: str, source_key: bytes) -> bytes:
    packed: bytes = msgpack.packb((source, field, source_key), use_bin_type=True)
    return packed


class Referrer(NamedTuple):
    """A record that links to another: its model name, the link field, and its key."""

    model: str
    field: str
    key: Any


class RefEntry(NamedTuple):
    """One decoded reverse-index entry."""

    index_key: bytes
    source: str
    field: str
    source_key: bytes


def parse_ref(index_key: bytes, value: bytes) -> RefEntry:
    source, field, source_key = msgpack.unpackb(value, raw=False)
    return RefEntry(index_key, source, field, source_key)


def unique_space(source: str, field: str) -> str:
    """Space holding, for a ``unique`` link, target key -> the source key that claims it."""
    return f"~uniq.{source}.{field}"


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
