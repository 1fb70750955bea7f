"""Generated int keys: blocks of keys reserved in a counter row per model, in the backend.

A process reserves a block by moving the model's counter with a conditional ``apply`` (on the
counter as read: two processes cannot reserve the same block), then hands keys out of it with no
backend round trip. Blocks grow from `FIRST_BLOCK` to `MAX_BLOCK` keys as a process keeps
inserting. A block starts past the counter and past the highest key stored, so keys given
explicitly earlier are skipped; what a process leaves of its block when it closes is never
handed out (keys have gaps, and are never reused).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio

from ._errors import CorruptRecord, RequestTimeout, WriteConflict
from ._layout import KEYS_SPACE
from ._model import ModelInfo
from .backends import Backend, Expect, Put, WriteBatch

FIRST_BLOCK = 16
MAX_BLOCK = 1024
MAX_RESERVE_ROUNDS = 64


class KeyTaken(Exception):
    """A generated key was written by an explicit insert first: generate again (internal)."""


class KeyBlocks:
    """Hands out one model's generated int keys; one per open database and model."""

    def __init__(self, backend: Backend, info: ModelInfo[Any]) -> None:
        self._backend = backend
        self._info = info
        self._row = info.name.encode()
        self._next = 0
        self._end = 0  # exclusive: the block is [_next, _end)
        self._size = FIRST_BLOCK
        self._lock = trio.Lock()

    def ready(self, count: int) -> list[int] | None:
        """``count`` keys from the block in hand, or None when it holds fewer (then `take`)."""
        start = self._next
        if self._end - start < count:
            return None
        self._next = start + count
        return list(range(start, start + count))

    async def fresh(self, count: int, *, seconds: float, given: Iterable[object]) -> list[int]:
        """``count`` keys as `take` gives them, none equal to an explicit key in ``given`` (the
        other records of the same batch, which would silently replace a generated one)."""
        avoid = {int.__int__(k) for k in given if isinstance(k, int) and not isinstance(k, bool)}
        keys: list[int] = []
        while len(keys) < count:
            wanted = count - len(keys)
            more = self.ready(wanted) or await self.take(wanted, seconds=seconds)
            keys.extend(key for key in more if key not in avoid)
        return keys

    async def take(self, count: int, *, seconds: float) -> list[int]:
        """``count`` keys no other taker (task or process) of this store ever gets;
        `RequestTimeout` if reserving them takes more than ``seconds``."""
        keys: list[int] = []
        with trio.move_on_after(seconds) as deadline:
            while len(keys) < count:
                if self._next >= self._end:
                    async with self._lock:
                        if self._next >= self._end:
                            await self._reserve(count - len(keys))
                    continue
                end = min(self._end, self._next + count - len(keys))
                keys.extend(range(self._next, end))
                self._next = end
        if deadline.cancelled_caught:  # keys it had taken are a gap, like a block left unused
            raise RequestTimeout(self._info.name, "insert", seconds)
        return keys

    def discard(self) -> None:
        """Give up the rest of the block (an explicit insert landed in it): reserve anew."""
        self._next = self._end

    async def _reserve(self, wanted: int) -> None:
        backend, row = self._backend, self._row
        for _ in range(MAX_RESERVE_ROUNDS):
            _, (raw,) = await backend.read(KEYS_SPACE, [row])
            start = max(_counter(self._info, raw), await highest_stored(backend, self._info)) + 1
            end = start + max(self._size, wanted)
            batch = WriteBatch(
                (Put(KEYS_SPACE, row, str(end - 1).encode()),), (Expect(KEYS_SPACE, row, raw),)
            )
            result = await backend.apply([batch])
            self._size = min(2 * self._size, MAX_BLOCK)
            if result.failed[0] is None:
                self._next, self._end = start, end
                return
        raise WriteConflict(self._info.name, MAX_RESERVE_ROUNDS)


async def last_reserved(backend: Backend, info: ModelInfo[Any]) -> int:
    """The highest key of ``info``'s model reserved so far by any process (0 if none)."""
    _, (raw,) = await backend.read(KEYS_SPACE, [info.name.encode()])
    return _counter(info, raw)


async def raise_counter(backend: Backend, info: ModelInfo[Any], floor: int) -> int:
    """Move ``info``'s counter up to ``floor`` and past the highest key stored (never down),
    conditionally on the counter as read, so a concurrent reservation is not lost; the counter."""
    row = info.name.encode()
    for _ in range(MAX_RESERVE_ROUNDS):
        _, (raw,) = await backend.read(KEYS_SPACE, [row])
        current = _counter(info, raw)
        wanted = max(current, floor, await highest_stored(backend, info))
        if wanted == current:
            return current
        batch = WriteBatch(
            (Put(KEYS_SPACE, row, str(wanted).encode()),), (Expect(KEYS_SPACE, row, raw),)
        )
        if (await backend.apply([batch])).failed[0] is None:
            return wanted
    raise WriteConflict(info.name, MAX_RESERVE_ROUNDS)


def _counter(info: ModelInfo[Any], raw: bytes | None) -> int:
    if raw is None:
        return 0
    try:
        return int(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CorruptRecord(
            info.name, KEYS_SPACE, f"key counter {raw[:40]!r} is not a number"
        ) from None


async def highest_stored(backend: Backend, info: ModelInfo[Any]) -> int:
    """The largest key stored (0 if none): explicit inserts may have gone past the counter."""
    top = await backend.scan(info.space, reverse=True, limit=1)
    if not top:
        return 0
    try:
        key = info.decode_key(top[0][0])
    except Exception:  # an undecodable key cannot collide with an int key
        return 0
    return key if isinstance(key, int) else 0
