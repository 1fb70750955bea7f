"""The two crossings the generated adapters use: each runs a trio-side call and returns its
result on the caller's side, and turns a trio async iterator into pages."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .. import _validate
from .._bridge import Runner
from .._errors import TransactionConflict, TransactionError
from .._model import ModelInfo, info_of
from .._portal import TrioPortal
from .._transaction import TransactionStore, checked_transact, pause

R = TypeVar("R")
T = TypeVar("T")


async def take(iterator: AsyncIterator[T], count: int) -> list[T]:
    """Up to ``count`` items from a trio-side async iterator (one crossing per page)."""
    items: list[T] = []
    for _ in range(count):
        try:
            items.append(await iterator.__anext__())
        except StopAsyncIteration:
            break
    return items


def pager(source: AsyncIterator[T], count: int, where: str) -> Callable[[], Awaitable[list[T]]]:
    """The next page of ``source``, as a call `Closed` names ``where`` (the adapter's method)."""

    async def page() -> list[T]:
        return await take(source, count)

    page.__qualname__ = where
    return page


def listed(where: str, name: str, items: Iterable[Any]) -> list[Any]:
    """``items`` as a list, taken in the caller before the call crosses (or `ValidationError`)."""
    return list(_validate.collection(where, name, items))


def model_name(model: type) -> str:
    """The name validation errors give ``model``."""
    info: ModelInfo[Any] | None = info_of(model)
    return model.__name__ if info is None else info.name


class SyncCrossing:
    """Calls from any thread into the trio runtime on a `TrioPortal` thread, blocking."""

    def __init__(self, crossing: TrioPortal) -> None:
        self._crossing = crossing

    def _run(self, call: Callable[[], Awaitable[R]]) -> R:
        return self._crossing.run(call)

    def _pages(self, source: AsyncIterator[R], page_size: int, where: str) -> Iterator[R]:
        return _sync_pages(self._crossing, pager(source, page_size, where), page_size)


def _sync_pages(
    portal: TrioPortal, fetch: Callable[[], Awaitable[list[R]]], page_size: int
) -> Iterator[R]:
    while True:
        page = portal.run(fetch)
        yield from page
        if len(page) < page_size:
            return


class AsyncioCrossing:
    """Calls from the asyncio loop into the trio runtime through a bridge `Runner`, awaited."""

    def __init__(self, crossing: Runner) -> None:
        self._crossing = crossing

    async def _run(self, call: Callable[[], Awaitable[R]]) -> R:
        return await self._crossing.call(call)

    def _pages(self, source: AsyncIterator[R], page_size: int, where: str) -> AsyncIterator[R]:
        return Pages(self._crossing, source, page_size, where)


class AsyncioTxCrossing(AsyncioCrossing):
    """The crossing of a transaction's store: a call cancelled on the loop may still have
    staged its write in trio, so the transaction is abandoned (it cannot commit)."""

    _target: TransactionStore[Any]

    async def _run(self, call: Callable[[], Awaitable[R]]) -> R:
        try:
            return await super()._run(call)
        except asyncio.CancelledError:
            self._target._tx._abandon()
            raise


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a page fetch's outcome as seen, so an abandoned scan logs no stray error."""
    if not future.cancelled():
        future.exception()


class Pages(Generic[T]):
    """An asyncio async iterator over a trio async iterator, a page per crossing."""

    def __init__(
        self, runner: Runner, source: AsyncIterator[T], page_size: int, where: str
    ) -> None:
        self._runner = runner
        self._fetch = pager(source, page_size, where)
        self._page_size = page_size
        self._page: list[T] = []
        self._index = 0
        self._done = False
        self._fetching: asyncio.Future[list[T]] | None = None

    def __aiter__(self) -> Pages[T]:
        return self

    async def __anext__(self) -> T:
        if self._index >= len(self._page):
            if self._done:
                raise StopAsyncIteration
            if self._fetching is None:
                self._fetching = asyncio.ensure_future(self._runner.call(self._fetch))
                self._fetching.add_done_callback(_retrieve)
            # Shielded: a caller cancelled mid-fetch (a timeout, say) leaves the page to the
            # next call instead of dropping records already taken from the scan.
            self._page = await asyncio.shield(self._fetching)
            self._fetching = None
            self._index = 0
            self._done = len(self._page) < self._page_size
            if not self._page:
                raise StopAsyncIteration
        item = self._page[self._index]
        self._index += 1
        return item


_IN_TRANSACTION: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
    "netabase_adapter_transaction", default=()
)
"""The databases (their `Routes`) this asyncio task or thread has a transaction open on."""


def _database_of(tx: Any) -> object:
    return tx._target._routes


def entered(tx: object) -> None:
    """An adapter transaction begins in this asyncio task or thread; a second one on the
    same database inside it would be independent of the first, so it is refused."""
    database = _database_of(tx)
    if any(open_on is database for open_on in _IN_TRANSACTION.get()):
        raise TransactionError(
            "db.transaction() inside a transaction would be a second, independent one; "
            "use the outer transaction's tx.store(...)"
        )
    _IN_TRANSACTION.set((*_IN_TRANSACTION.get(), database))


def left(tx: object) -> None:
    database = _database_of(tx)
    _IN_TRANSACTION.set(tuple(d for d in _IN_TRANSACTION.get() if d is not database))


async def asyncio_transact(
    begin: Callable[[], Any],
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    retries: object,
) -> R:
    """`Database.transact` for asyncio callers: ``fn`` runs on the loop, each attempt in a
    fresh transaction."""
    bound = checked_transact(fn, retries)
    attempt = 0
    while True:
        try:
            async with begin() as tx:
                return await fn(tx, *args)
        except TransactionConflict:
            if attempt >= bound:
                raise
        attempt += 1
        await asyncio.sleep(pause(attempt))


def sync_transact(
    begin: Callable[[], Any], fn: Callable[..., R], args: tuple[Any, ...], retries: object
) -> R:
    """`Database.transact` for blocking callers: ``fn`` runs in the calling thread."""
    bound = checked_transact(fn, retries)
    attempt = 0
    while True:
        try:
            with begin() as tx:
                return fn(tx, *args)
        except TransactionConflict:
            if attempt >= bound:
                raise
        attempt += 1
        time.sleep(pause(attempt))
