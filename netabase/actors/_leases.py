"""Snapshot leases: a transaction's snapshot is closed at its deadline even if the transaction
sits idle, so an LMDB read transaction is never pinned for longer than ``transaction_timeout``.

A transaction's deadline runs from when it was entered, its lease from its first read, so leases
do not arrive in deadline order: they wait in a heap by deadline, released ones dropped lazily.
"""

from __future__ import annotations

import heapq
import itertools
import math

import trio

from ..backends import Snapshot


class Lease:
    """One snapshot until `release` or its deadline, whichever comes first."""

    __slots__ = ("deadline", "released", "snapshot")

    def __init__(self, snapshot: Snapshot, deadline: float) -> None:
        self.snapshot = snapshot
        self.deadline = deadline
        self.released = False

    def release(self) -> None:
        self.released = True
        self.snapshot.close()


class SnapshotLeases:
    """Open snapshots with deadlines, and the watcher task that closes the late ones."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Lease]] = []
        self._order = itertools.count()
        self._lot = trio.lowlevel.ParkingLot()

    def _drop_released(self) -> None:
        heap = self._heap
        while heap and heap[0][2].released:
            heapq.heappop(heap)

    def add(self, snapshot: Snapshot, deadline: float) -> Lease:
        self._drop_released()
        lease = Lease(snapshot, deadline)
        heap = self._heap
        heapq.heappush(heap, (deadline, next(self._order), lease))
        if heap[0][2] is lease:  # the earliest deadline now: the watcher waits for it
            self._lot.unpark_all()
        return lease

    def __len__(self) -> int:
        return sum(not lease.released for _, _, lease in self._heap)

    async def run(self) -> None:
        """Close snapshots at their deadlines until cancelled."""
        heap = self._heap
        while True:
            self._drop_released()
            with trio.move_on_at(heap[0][0] if heap else math.inf):
                await self._lot.park()
            now = trio.current_time()
            while heap and (heap[0][2].released or heap[0][0] <= now):
                heapq.heappop(heap)[2].release()

    def release_all(self) -> None:
        while self._heap:
            heapq.heappop(self._heap)[2].release()
