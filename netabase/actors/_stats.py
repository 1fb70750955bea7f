"""Actor statistics: cheap counters updated on the hot path, snapshotted on demand."""

from __future__ import annotations

import array

import attrs

_WINDOW = 4096


@attrs.frozen
class ActorStats:
    """A snapshot of one actor; latencies: seconds from enqueue to reply, recent requests."""

    name: str
    mailbox_depth: int
    mailbox_capacity: int
    requests: int
    batches: int
    mean_batch: float
    max_batch: int
    cache_size: int
    cache_hits: int
    cache_misses: int
    restarts: int
    p50_latency: float
    p99_latency: float

    @property
    def cache_hit_ratio(self) -> float:
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else 0.0


class StatsRecorder:
    """Counters an actor bumps while it works; `latency` keeps a ring of recent samples."""

    __slots__ = ("_latencies", "_next", "batches", "max_batch", "requests", "restarts")

    def __init__(self) -> None:
        self.requests = 0
        self.batches = 0
        self.max_batch = 0
        self.restarts = 0
        self._latencies = array.array("d", bytes(8 * _WINDOW))
        self._next = 0

    def batch(self, size: int) -> None:
        self.batches += 1
        self.requests += size
        if size > self.max_batch:
            self.max_batch = size

    def latency(self, seconds: float) -> None:
        self._latencies[self._next % _WINDOW] = seconds
        self._next += 1

    def percentiles(self) -> tuple[float, float]:
        count = min(self._next, _WINDOW)
        if not count:
            return 0.0, 0.0
        samples = sorted(self._latencies[:count])
        return samples[count // 2], samples[min(count - 1, (count * 99) // 100)]
