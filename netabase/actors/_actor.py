"""The batching actor: the gen_server part every netabase actor shares.

It drains its mailbox in batches, skips requests whose callers already left (cancelled or past
their deadline), hands the rest to its ``handle_batch``, keeps what it took for the supervisor
(`take_inflight`: those get `ActorCrashed` if the handler raises) and counts what it served.
The store and permission actors supply the handlers; the `Supervisor` runs and restarts them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from .._errors import WriteConflict
from ._mailbox import Mailbox, Request
from ._stats import ActorStats, StatsRecorder

MAX_WRITE_ROUNDS = 16
"""Times a write batch is planned again after other writers changed what it was planned on."""

Handler = Callable[[list[Request]], Awaitable[None]]


class BatchingActor:
    """Serves ``mailbox`` in batches of up to ``max_batch`` through ``handle_batch``."""

    __slots__ = ("_inflight", "counters", "handle_batch", "mailbox", "max_batch", "name")

    def __init__(self, name: str, mailbox: Mailbox, max_batch: int, handle_batch: Handler) -> None:
        self.name = name
        self.mailbox = mailbox
        self.max_batch = max_batch
        self.handle_batch = handle_batch
        self.counters = StatsRecorder()
        self._inflight: list[Request] = []

    async def run(self) -> None:
        """Serve until the mailbox is closed and drained; a handler's exception is a crash."""
        mailbox, limit, counters = self.mailbox, self.max_batch, self.counters
        while True:
            batch = await mailbox.take(limit)
            if not batch:
                return
            self._inflight = batch
            live = [request for request in batch if not request.abandoned]
            if live:  # a batch whose callers all left is no batch served
                counters.batch(len(live))
            await self.handle_batch(live)
            now = trio.current_time()
            latency = counters.latency
            for request in live:
                latency(now - request.enqueued_at)
            self._inflight = []

    def take_inflight(self) -> list[Request]:
        """The requests this incarnation took and has not answered (and forget them)."""
        taken = [request for request in self._inflight if not request.done]
        self._inflight = []
        return taken

    def restarted(self) -> None:
        self.counters.restarts += 1

    def statistics(self, *, cache_size: int, cache_hits: int, cache_misses: int) -> ActorStats:
        """A snapshot of the counters, with the owner's cache figures."""
        counters = self.counters
        p50, p99 = counters.percentiles()
        batches = counters.batches
        return ActorStats(
            name=self.name,
            mailbox_depth=len(self.mailbox),
            mailbox_capacity=self.mailbox.capacity,
            requests=counters.requests,
            batches=batches,
            mean_batch=counters.requests / batches if batches else 0.0,
            max_batch=counters.max_batch,
            cache_size=cache_size,
            cache_hits=cache_hits,
            cache_misses=cache_misses,
            restarts=counters.restarts,
            p50_latency=p50,
            p99_latency=p99,
        )


async def in_rounds(
    requests: list[Request],
    serve_round: Callable[[list[Request]], Awaitable[list[Request]]],
    model: str,
) -> None:
    """Serve writes in rounds: each round answers what it can and returns the requests to plan
    again (their conditions were not met); past `MAX_WRITE_ROUNDS` they get `WriteConflict`."""
    pending = requests
    for _ in range(MAX_WRITE_ROUNDS):
        pending = await serve_round(pending)
        if not pending:
            return
    for request in pending:
        request.fail(WriteConflict(model, MAX_WRITE_ROUNDS))
