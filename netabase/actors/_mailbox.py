"""Requests with reply slots, and the bounded mailbox an actor drains in batches.

The reply path uses trio's low-level parking (``wait_task_rescheduled``/``reschedule``) rather than
an Event per request: it is the cheapest wake-up trio offers, and a request knows whether its
caller gave up (cancelled or timed out) so the actor can skip it if it has not started on it.
"""

from __future__ import annotations

import collections
from typing import Any

import outcome
import trio

from .._errors import Closed
from ._messages import Message


class Request:
    """One call to an actor: the message, the caller's key (for errors), and the reply slot."""

    __slots__ = ("abandoned", "enqueued_at", "key", "message", "result", "task")

    def __init__(self, message: Message, key: object = None) -> None:
        self.message = message
        self.key = key
        self.task: trio.lowlevel.Task | None = None
        self.result: outcome.Outcome[Any] | None = None
        self.abandoned = False
        self.enqueued_at = 0.0

    @property
    def done(self) -> bool:
        return self.result is not None

    def resolve(self, result: outcome.Outcome[Any]) -> None:
        """Deliver the answer (first answer wins; a caller who left is not woken)."""
        if self.result is not None:
            return
        self.result = result
        task, self.task = self.task, None
        if task is not None:
            trio.lowlevel.reschedule(task, result)

    def reply(self, value: Any) -> None:
        self.resolve(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self.resolve(outcome.Error(error))

    async def wait(self) -> Any:
        """Wait for the answer; if cancelled first, mark the request abandoned."""
        if self.result is not None:
            await trio.lowlevel.checkpoint()
            return self.result.unwrap()
        self.task = trio.lowlevel.current_task()
        return await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self.task = None
        self.abandoned = True
        return trio.lowlevel.Abort.SUCCEEDED


class Mailbox:
    """A bounded FIFO of requests: senders wait (or fail fast) when it is full.

    ``name`` is what errors about its requests name (the model); ``owner`` what `Closed` names.
    """

    def __init__(self, owner: str, capacity: int, *, name: str | None = None) -> None:
        self.owner = owner
        self.name = owner if name is None else name
        self.capacity = capacity
        self._items: collections.deque[Request] = collections.deque()
        self._not_empty = trio.lowlevel.ParkingLot()
        self._not_full = trio.lowlevel.ParkingLot()
        self.closed_error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, request: Request, now: float) -> None:
        """Enqueue if there is room (the fast path), else raise `trio.WouldBlock`; ``now`` is
        the caller's `trio.current_time`, which it needs for the deadline anyway."""
        if len(self._items) >= self.capacity and self.closed_error is None:
            raise trio.WouldBlock
        self._enqueue(request, now)

    async def put(self, request: Request) -> None:
        """Enqueue, waiting while the mailbox is full (backpressure)."""
        while len(self._items) >= self.capacity and self.closed_error is None:
            await self._not_full.park()
        self._enqueue(request, trio.current_time())

    def _enqueue(self, request: Request, now: float) -> None:
        if self.closed_error is not None:
            raise self.closed_error
        request.enqueued_at = now
        self._items.append(request)
        if len(self._items) == 1:
            self._not_empty.unpark()

    async def take(self, limit: int) -> list[Request]:
        """Wait for requests and take every waiting one, up to ``limit``.

        Returns an empty list once the mailbox is closed and drained: the actor's cue to stop.
        """
        while not self._items:
            if self.closed_error is not None:
                await trio.lowlevel.checkpoint()
                return []
            await self._not_empty.park()
        items = self._items
        if len(items) <= limit:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(limit)]
        self._not_full.unpark(count=len(batch))
        return batch

    def close(self, error: BaseException | None = None) -> None:
        """Refuse new requests with ``error``; queued ones are still taken (drained)."""
        if self.closed_error is None:
            self.closed_error = error or Closed(self.owner)
        self._not_full.unpark_all()
        self._not_empty.unpark_all()

    def fail_pending(self, error: BaseException) -> None:
        """Answer every queued request with ``error`` (the runtime is going away)."""
        while self._items:
            self._items.popleft().fail(error)
        self._not_full.unpark_all()
