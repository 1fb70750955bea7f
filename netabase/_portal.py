"""A trio event loop on a dedicated thread, callable from any other thread.

Used by the synchronous API, by asyncio integration and by tests that drive a trio runtime from
synchronous code (hypothesis state machines). Async context managers entered through the portal
live in the portal's own nursery, so they outlast the call that entered them.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

import trio

from ._errors import Closed, NetabaseError

T = TypeVar("T")


def _in_trio_run() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def described(fn: Callable[..., object]) -> str:
    """What a refused call was, for `Closed`: ``SyncStore.get``, not its inner lambda."""
    return str(getattr(fn, "__qualname__", "this call")).split(".<locals>")[0]


class Held(Generic[T]):
    """An async context manager entered on the portal; `close` exits it from this thread."""

    def __init__(self, portal: TrioPortal, value: T) -> None:
        self._portal = portal
        self.value = value
        self.stop = trio.Event()
        self.done = trio.Event()
        self.error: Exception | None = None

    def close(self) -> None:
        """Exit the context manager and wait until it has; re-raise what its exit raised."""

        async def finish() -> None:
            self.stop.set()
            await self.done.wait()

        self._portal.run(finish)
        if self.error is not None:
            raise self.error


class TrioPortal:
    """Start with `start`, call with `run`, end with `stop`; the loop lives between the two."""

    def __init__(self, name: str = "netabase-trio") -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        if _in_trio_run():
            raise NetabaseError(
                "the synchronous API cannot run inside a trio run (it would block the loop "
                "that serves it); use `async with netabase.open(...)` there"
            )
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        async def serve() -> None:
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._ready.set()
                await self._stop.wait()
                nursery.cancel_scope.cancel()

        try:
            trio.run(serve)
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    @property
    def token(self) -> trio.lowlevel.TrioToken:
        if self._token is None:
            raise RuntimeError("the trio portal is not running")
        return self._token

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("the trio portal is not running")
        return self._nursery

    def run(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``async_fn(*args)`` on the portal's loop and return its result here."""
        if self._token is None:
            raise Closed(described(async_fn))
        return trio.from_thread.run(async_fn, *args, trio_token=self._token)

    def enter(self, manager: AbstractAsyncContextManager[T]) -> Held[T]:
        """Enter ``manager`` on the portal's loop and keep it open until `Held.close`."""

        async def hold(*, task_status: trio.TaskStatus[Held[T]]) -> None:
            held: Held[T] | None = None
            try:
                async with manager as value:
                    held = Held(self, value)
                    task_status.started(held)
                    await held.stop.wait()
            except Exception as exc:
                if held is None:
                    raise
                held.error = exc
            finally:
                if held is not None:
                    held.done.set()

        async def start() -> Held[T]:
            assert self._nursery is not None
            held: Held[T] = await self._nursery.start(hold)
            return held

        return self.run(start)

    def stop(self) -> None:
        token, self._token = self._token, None
        if token is None or self._stop is None:
            return
        token.run_sync_soon(self._stop.set)  # works from any thread, trio's own included
        assert self._thread is not None
        self._thread.join()
