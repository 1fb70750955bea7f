"""``memory://``: plain Python structures, ordered; for tests and ephemeral data.

Each space is a `sortedcontainers.SortedDict` (O(log n) inserts, ordered ranges; a plain sorted
list costs a memmove of the whole key list per new key). Everything runs inline on the trio
thread, so an `apply` is atomic simply by not awaiting while it runs.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import trio
from sortedcontainers import SortedDict

from .._errors import InvalidURL
from ._base import (
    ApplyResult,
    Backend,
    Condition,
    Delete,
    Expect,
    WriteBatch,
    check_key_sizes,
    matches,
    with_stamp,
)
from ._snapshot import Snapshot, SnapshotLost

if TYPE_CHECKING:
    from ._url import BackendURL


class _Space:
    __slots__ = ("data", "version")

    def __init__(self) -> None:
        self.data: SortedDict[bytes, bytes] = SortedDict()
        self.version = 0

    def keys_between(self, lo: bytes, hi: bytes | None, reverse: bool = False) -> Iterator[bytes]:
        return self.data.irange(lo, hi, inclusive=(True, False), reverse=reverse)  # type: ignore[no-any-return]


class MemoryBackend(Backend):
    """Ordered in-process storage; nothing survives the process."""

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        self._spaces: dict[str, _Space] = {}
        self._snapshots: set[_MemorySnapshot] = set()

    @classmethod
    def from_url(cls, url: BackendURL) -> MemoryBackend:
        """``memory://``, with no location and no options."""
        url.check_options(set())
        if url.location:
            raise InvalidURL(url.raw, "memory:// takes no location")
        return cls(url.raw)

    def _space(self, name: str) -> _Space:
        space = self._spaces.get(name)
        if space is None:
            space = self._spaces[name] = _Space()
        return space

    async def start(self, spaces: Iterable[str]) -> None:
        for name in spaces:
            self._space(name)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        target = self._space(space)
        get = target.data.get
        return target.version, [get(key) for key in keys]

    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        target = self._space(space)
        keys = target.keys_between(lo, hi, reverse)
        if limit is not None:
            keys = itertools.islice(keys, limit)
        data = target.data
        return [(key, data[key]) for key in keys]

    def _holds(self, condition: Condition) -> bool:
        space = self._space(condition.space)
        if isinstance(condition, Expect):
            return matches(space.data.get(condition.key), condition.value)
        return set(space.keys_between(*condition.bounds())) == condition.keys

    async def apply(self, batches: Sequence[WriteBatch]) -> ApplyResult:
        check_key_sizes(batches)
        failed: list[int | None] = []
        touched: set[str] = set()
        stamps: dict[str, int] = {}
        for batch in batches:
            unmet = next(
                (i for i, condition in enumerate(batch.expects) if not self._holds(condition)),
                None,
            )
            failed.append(unmet)
            if unmet is not None:
                continue
            for op in batch.ops:
                space = self._space(op.space)
                for snapshot in self._snapshots:
                    snapshot.preserve(op.space, op.key, space.data.get(op.key))
                if isinstance(op, Delete):
                    space.data.pop(op.key, None)
                elif op.stamp:
                    stamp = stamps[op.space] = stamps.get(op.space, space.version) + 1
                    space.data[op.key] = with_stamp(op.value, stamp)
                else:
                    space.data[op.key] = op.value
                touched.add(op.space)
        versions = {}
        for name in touched:
            space = self._spaces[name]
            after = max(space.version + 1, stamps.get(name, 0))
            versions[name] = (space.version, after)
            space.version = after
        return ApplyResult(tuple(failed), versions)

    async def version(self, space: str) -> int:
        return self._space(space).version

    async def count(self, space: str) -> int:
        return len(self._space(space).data)

    async def snapshot(self) -> Snapshot:
        """Copy-on-write: each later write first hands the value it replaces to the snapshot."""
        await trio.lowlevel.checkpoint()
        snapshot = _MemorySnapshot(self)
        self._snapshots.add(snapshot)
        return snapshot


class _MemorySnapshot(Snapshot):
    """The backend's current data overlaid by the values writes replaced since it was taken."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend: MemoryBackend | None = backend
        self._before: dict[str, SortedDict[bytes, bytes | None]] = {}

    def preserve(self, space: str, key: bytes, value: bytes | None) -> None:
        before = self._before.get(space)
        if before is None:
            before = self._before[space] = SortedDict()
        if key not in before:
            before[key] = value

    def _live(self) -> MemoryBackend:
        if self._backend is None:
            raise SnapshotLost("the snapshot was closed")
        return self._backend

    async def read(self, space: str, keys: Sequence[bytes]) -> list[bytes | None]:
        # Checkpoint first: a write during it may create this space's undo values.
        await trio.lowlevel.checkpoint()
        data = self._live()._space(space).data
        before = self._before.get(space)
        if before is None:
            return [data.get(key) for key in keys]
        return [before[key] if key in before else data.get(key) for key in keys]

    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        await trio.lowlevel.checkpoint()
        target = self._live()._space(space)
        before = self._before.get(space)
        keys: Iterator[bytes] = target.keys_between(lo, hi, reverse)
        if before:
            changed = before.irange(lo, hi, inclusive=(True, False), reverse=reverse)
            keys = _merged(keys, changed, reverse)
        out: list[tuple[bytes, bytes]] = []
        data = target.data
        for key in keys:
            if limit is not None and len(out) >= limit:
                break
            value = before[key] if before and key in before else data[key]
            if value is not None:
                out.append((key, value))
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend._snapshots.discard(self)
            self._backend = None
            self._before = {}


def _merged(first: Iterator[bytes], second: Iterator[bytes], reverse: bool) -> Iterator[bytes]:
    """The keys of two sorted iterators in order, each once."""
    last: bytes | None = None
    for key in heapq.merge(first, second, reverse=reverse):
        if key != last:
            yield key
            last = key
