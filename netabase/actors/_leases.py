"""Snapshot leases: a transaction's snapshot is closed at its deadline even if the transaction
sits idle, so an LMDB read transaction is never pinned for longer than ``transaction_timeout``.

Every lease has the same timeout, so deadlines arrive in order: a FIFO whose released heads are
dropped as new leases arrive holds only the snapshots still open (like `Deadlines`).
"""

from __future__ import annotations

import collections
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
        self._queue: collections.deque[Lease] = collections.deque()
        self._lot = trio.lowlevel.ParkingLot()

    def add(self, snapshot: Snapshot, deadline: float) -> Lease:
        queue = self._queue
        while queue and queue[0].released:
            queue.popleft()
        lease = Lease(snapshot, deadline)
        queue.append(lease)
        if len(queue) == 1:
            self._lot.unpark_all()
        return lease

    def __len__(self) -> int:
        return sum(not lease.released for lease in self._queue)

    async def run(self) -> None:
        """Close snapshots at their deadlines until cancelled."""
        queue = self._queue
        while True:
            with trio.move_on_at(queue[0].deadline if queue else math.inf):
                await self._lot.park()
            now = trio.current_time()
            while queue and (queue[0].released or queue[0].deadline <= now):
                queue.popleft().release()

    def release_all(self) -> None:
        while self._queue:
            self._queue.popleft().release()
