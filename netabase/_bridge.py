"""Running the trio runtime under asyncio: two ways, one interface.

* `GuestRunner` runs trio in *guest mode* on the asyncio loop's own thread
  (`trio.lowlevel.start_guest_run`): trio's tasks are driven by asyncio callbacks and only its
  I/O wait happens on a helper thread. A call hands a coroutine to trio and gets an asyncio
  future back, with no thread crossing for the result.
* `ThreadRunner` runs trio on a dedicated thread (`TrioPortal`); results come back to the
  asyncio loop with ``call_soon_threadsafe``.

Both hand calls over in bursts: one wakeup of the other side per burst of calls (and of
results), not per call, which doubled the thread runner's concurrent throughput.

`benchmarks/asyncio_bridge.py` measures both; `open_asyncio` uses the guest runner by default
(see ``docs/integration.md`` for the figures).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Protocol, TypeVar

import outcome
import trio

from ._errors import Closed, NetabaseError
from ._portal import TrioPortal, described

R = TypeVar("R")
T = TypeVar("T")


class Runner(Protocol):
    """Runs trio coroutines for asyncio callers."""

    @property
    def nursery(self) -> trio.Nursery: ...

    async def start(self) -> None: ...

    async def call(self, fn: Callable[..., Awaitable[R]], *args: Any) -> R: ...

    async def stop(self) -> None: ...


async def _run_task(
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    scope: trio.CancelScope,
    deliver: Callable[[outcome.Outcome[Any]], None],
) -> None:
    with scope:
        result = await outcome.acapture(fn, *args)
        deliver(result)
        return
    deliver(outcome.Error(asyncio.CancelledError()))


Job = tuple[Callable[..., Awaitable[Any]], tuple[Any, ...], trio.CancelScope, Callable[..., None]]


class _Batched(Generic[T]):
    """Items handed from one thread to another with one wakeup per burst, not per item."""

    def __init__(self, wake: Callable[[Callable[[], None]], object]) -> None:
        self._wake = wake
        self._items: list[T] = []
        self._lock = threading.Lock()
        self.handle: Callable[[list[T]], None] = lambda items: None

    def put(self, item: T) -> None:
        with self._lock:
            self._items.append(item)
            first = len(self._items) == 1
        if first:
            self._wake(self._flush)

    def _flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        self.handle(items)


def _settle(future: asyncio.Future[Any], result: outcome.Outcome[Any]) -> None:
    if future.done():
        return
    if isinstance(result, outcome.Value):
        future.set_result(result.value)
    elif isinstance(result, outcome.Error):
        future.set_exception(result.error)


def _settle_all(pairs: list[tuple[asyncio.Future[Any], outcome.Outcome[Any]]]) -> None:
    for future, result in pairs:
        _settle(future, result)


class _TrioRunner:
    """What both runners share: jobs start in trio's nursery, a burst per wakeup."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._jobs: _Batched[Job] | None = None

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None
        return self._nursery

    def _ready(self, token: trio.lowlevel.TrioToken, nursery: trio.Nursery) -> None:
        self._token = token
        self._nursery = nursery
        self._jobs = _Batched(token.run_sync_soon)

        def start_all(jobs: list[Job]) -> None:
            for job in jobs:
                nursery.start_soon(_run_task, *job)

        self._jobs.handle = start_all

    def _deliverer(self, future: asyncio.Future[Any]) -> Callable[[outcome.Outcome[Any]], None]:
        raise NotImplementedError

    async def call(self, fn: Callable[..., Awaitable[R]], *args: Any) -> R:
        if self._token is None:
            raise Closed(described(fn))
        assert self._loop is not None and self._jobs is not None
        future: asyncio.Future[R] = self._loop.create_future()
        scope = trio.CancelScope()
        self._jobs.put((fn, args, scope, self._deliverer(future)))
        try:
            return await future
        except asyncio.CancelledError:
            self._token.run_sync_soon(scope.cancel)
            raise


class GuestRunner(_TrioRunner):
    """Trio as a guest on the running asyncio loop (same thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._stop: trio.Event | None = None
        self._done: asyncio.Future[outcome.Outcome[Any]] | None = None

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        done: asyncio.Future[outcome.Outcome[Any]] = loop.create_future()
        self._done = done

        async def main() -> None:
            self._stop = trio.Event()
            async with trio.open_nursery() as nursery:
                self._ready(trio.lowlevel.current_trio_token(), nursery)
                ready.set_result(None)
                await self._stop.wait()
                nursery.cancel_scope.cancel()

        def finished(result: outcome.Outcome[Any]) -> None:
            if not ready.done():
                ready.set_exception(RuntimeError(f"trio guest run ended early: {result!r}"))
            done.set_result(result)

        try:
            trio.lowlevel.start_guest_run(
                main,
                run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                run_sync_soon_not_threadsafe=loop.call_soon,
                done_callback=finished,
                host_uses_signal_set_wakeup_fd=True,
            )
        except RuntimeError as exc:  # trio already runs on this thread (someone else's guest)
            raise NetabaseError(
                f"cannot start trio in guest mode here ({exc}); "
                'use open_asyncio(..., bridge="thread")'
            ) from None
        await ready

    def _deliverer(self, future: asyncio.Future[Any]) -> Callable[[outcome.Outcome[Any]], None]:
        # Trio's tasks run on this very thread: settle the future directly.
        return lambda result: _settle(future, result)

    async def stop(self) -> None:
        if self._token is None or self._stop is None or self._done is None:
            return
        self._token.run_sync_soon(self._stop.set)
        self._token = None
        (await self._done).unwrap()


class ThreadRunner(_TrioRunner):
    """Trio on its own thread behind a `TrioPortal`; results cross back in bursts too."""

    def __init__(self) -> None:
        super().__init__()
        self._portal = TrioPortal("netabase-asyncio-bridge")
        self._results: _Batched[tuple[asyncio.Future[Any], outcome.Outcome[Any]]] | None = None

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._portal.start)
        self._ready(self._portal.token, self._portal.nursery)
        self._results = _Batched(loop.call_soon_threadsafe)
        self._results.handle = _settle_all

    def _deliverer(self, future: asyncio.Future[Any]) -> Callable[[outcome.Outcome[Any]], None]:
        results = self._results
        assert results is not None
        return lambda result: results.put((future, result))

    async def stop(self) -> None:
        if self._token is None:
            return
        self._token = None
        await asyncio.to_thread(self._portal.stop)


class Holder(Generic[T]):
    """An async context manager entered in trio and kept open until `leave`."""

    def __init__(self) -> None:
        self.value: T | None = None
        self.stop = trio.Event()
        self.done = trio.Event()
        self.error: BaseException | None = None


async def enter(nursery: trio.Nursery, manager: AbstractAsyncContextManager[T]) -> Holder[T]:
    """Enter ``manager`` in a task of ``nursery`` (so it outlives this call); errors on entry
    are raised here."""
    holder: Holder[T] = Holder()

    async def keep(*, task_status: trio.TaskStatus[None]) -> None:
        started = False
        try:
            async with manager as value:
                holder.value = value
                started = True
                task_status.started()
                await holder.stop.wait()
        except BaseException as exc:
            if not started:
                raise
            holder.error = exc
        finally:
            holder.done.set()

    await nursery.start(keep)
    return holder


async def leave(holder: Holder[Any]) -> None:
    """Exit a held context manager and re-raise what its exit raised."""
    holder.stop.set()
    await holder.done.wait()
    if holder.error is not None:
        raise holder.error


class _GuestLease:
    """One trio guest run per asyncio loop, shared by every database opened on that loop
    (trio allows one run per thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.runner = GuestRunner()
        self.users = 0
        self.starting = loop.create_task(self.runner.start())


_GUESTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GuestLease] = (
    weakref.WeakKeyDictionary()
)


async def acquire_guest() -> GuestRunner:
    """This loop's guest runner, started on first use; pair with `release_guest`."""
    loop = asyncio.get_running_loop()
    lease = _GUESTS.get(loop)
    if lease is None:
        lease = _GUESTS[loop] = _GuestLease(loop)
    lease.users += 1
    try:
        await asyncio.shield(lease.starting)
    except BaseException:
        await release_guest(lease.runner)
        raise
    return lease.runner


async def release_guest(runner: GuestRunner) -> None:
    """Give up one use of this loop's guest runner; the last user stops it."""
    loop = asyncio.get_running_loop()
    lease = _GUESTS.get(loop)
    if lease is None or lease.runner is not runner:
        return
    lease.users -= 1
    if lease.users == 0:
        del _GUESTS[loop]
        try:
            await asyncio.shield(lease.starting)  # a run still starting is stopped once up
        except BaseException:
            return  # it never started: nothing to stop
        await runner.stop()
