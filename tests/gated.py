"""A memory backend whose reads or writes can be held at a gate, to test what waits on them.

Registered as ``gated://NAME`` through the public `register_backend`; the same NAME returns the
same backend (and data) on every open, so reopening keeps what was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

import netabase
from netabase.backends import ApplyResult, Backend, BackendURL, WriteBatch
from netabase.backends.memory import MemoryBackend


class GatedBackend(MemoryBackend):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.hold_reads = False
        self.hold_writes = False
        self.held = 0
        self._gate = trio.Event()

    def close_gate(self, *, reads: bool = False, writes: bool = False) -> None:
        self.hold_reads, self.hold_writes = reads, writes
        self._gate = trio.Event()

    def open_gate(self) -> None:
        self.hold_reads = self.hold_writes = False
        self._gate.set()

    async def _maybe_wait(self, held: bool) -> None:
        if held:
            self.held += 1
            await self._gate.wait()

    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        await self._maybe_wait(self.hold_reads)
        return await super().read(space, keys)

    async def apply(self, batches: Sequence[WriteBatch]) -> ApplyResult:
        await self._maybe_wait(self.hold_writes)
        return await super().apply(batches)


_instances: dict[str, GatedBackend] = {}


def _factory(url: BackendURL) -> Backend:
    return _instances.setdefault(url.location, GatedBackend(url.raw))


def gated(name: str) -> tuple[str, GatedBackend]:
    """A fresh gated backend and its URL."""
    _instances.pop(name, None)
    url = f"gated://{name}"
    backend = _factory(BackendURL(url, "gated", name, {}))
    assert isinstance(backend, GatedBackend)
    return url, backend


netabase.register_backend("gated", _factory)
