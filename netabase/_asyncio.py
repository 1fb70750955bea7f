"""netabase for asyncio applications: the same typed API, awaited on the asyncio loop.

The trio runtime runs beside the asyncio loop (guest mode by default, or a dedicated thread; see
`_bridge`), and every call is handed to it and awaited as an asyncio future, so the loop never
blocks on netabase. Errors arrive as the same `netabase` exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, Literal, TypeVar, overload

from . import _validate
from ._bridge import (
    GuestRunner,
    Runner,
    ThreadRunner,
    acquire_guest,
    enter,
    leave,
    release_guest,
)
from ._database import Database, DatabaseStats, open_database
from ._errors import ValidationError
from ._roles import Explanation
from ._store import DEFAULT_PAGE_SIZE, Loaded, Store
from .actors._links import Referrer

T = TypeVar("T")

Bridge = Literal["guest", "thread"]


async def take(iterator: AsyncIterator[T], count: int) -> list[T]:
    """Up to ``count`` items from a trio-side async iterator (one bridge crossing per page)."""
    items: list[T] = []
    for _ in range(count):
        try:
            items.append(await iterator.__anext__())
        except StopAsyncIteration:
            break
    return items


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a page fetch's outcome as seen, so an abandoned scan logs no stray error."""
    if not future.cancelled():
        future.exception()


class _Pages(Generic[T]):
    """An asyncio async iterator over a trio async iterator, a page per crossing."""

    def __init__(self, runner: Runner, source: AsyncIterator[T], page_size: int) -> None:
        self._runner = runner
        self._source = source
        self._page_size = page_size
        self._page: list[T] = []
        self._index = 0
        self._done = False
        self._fetching: asyncio.Future[list[T]] | None = None

    def __aiter__(self) -> _Pages[T]:
        return self

    async def __anext__(self) -> T:
        if self._index >= len(self._page):
            if self._done:
                raise StopAsyncIteration
            if self._fetching is None:
                self._fetching = asyncio.ensure_future(
                    self._runner.call(take, self._source, self._page_size)
                )
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


class AsyncioStore(Generic[T]):
    """`Store[T]` for asyncio callers; see `Store` for what each method does."""

    def __init__(self, store: Store[T], runner: Runner) -> None:
        self._store = store
        self._runner = runner

    def __repr__(self) -> str:
        return f"<netabase.AsyncioStore {self._store.model.__name__}>"

    @overload
    async def get(self, key: Any) -> T | None: ...

    @overload
    async def get(self, key: Any, *, load: Sequence[str]) -> Loaded[T] | None: ...

    async def get(self, key: Any, *, load: Sequence[str] | None = None) -> T | Loaded[T] | None:
        if load is None:
            return await self._runner.call(self._store.get, key)
        return await self._runner.call(lambda: self._store.get(key, load=load))

    async def get_many(self, keys: Iterable[Any]) -> list[T | None]:
        return await self._runner.call(self._store.get_many, self._store.listed("keys", keys))

    async def contains(self, key: Any) -> bool:
        return await self._runner.call(self._store.contains, key)

    async def count(self) -> int:
        return await self._runner.call(self._store.count)

    async def insert(self, record: T) -> None:
        await self._runner.call(self._store.insert, record)

    async def insert_many(self, records: Iterable[T]) -> None:
        await self._runner.call(self._store.insert_many, self._store.listed("records", records))

    async def remove(self, key: Any) -> bool:
        return await self._runner.call(self._store.remove, key)

    async def remove_many(self, keys: Iterable[Any]) -> int:
        return await self._runner.call(self._store.remove_many, self._store.listed("keys", keys))

    async def referrers(
        self, key: Any, model: type | None = None, field: str | None = None
    ) -> list[Referrer]:
        return await self._runner.call(self._store.referrers, key, model, field)

    def scan(
        self,
        *,
        start: Any = None,
        stop: Any = None,
        prefix: Any = None,
        limit: int | None = None,
        reverse: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        skip_corrupt: bool = False,
    ) -> AsyncIterator[T]:
        source = self._store.scan(
            start=start,
            stop=stop,
            prefix=prefix,
            limit=limit,
            reverse=reverse,
            page_size=page_size,
            skip_corrupt=skip_corrupt,
        )
        return _Pages(self._runner, source, page_size)


class AsyncioPermissions:
    """`Permissions` for asyncio callers."""

    def __init__(self, database: Database, runner: Runner) -> None:
        self._permissions = database.permissions
        self._runner = runner

    async def grant(self, principal: str, model: type, key: Any, role: str) -> None:
        await self._runner.call(self._permissions.grant, principal, model, key, role)

    async def revoke(self, principal: str, model: type, key: Any, role: str | None = None) -> int:
        return await self._runner.call(self._permissions.revoke, principal, model, key, role)

    async def add_member(self, group: str, member: str) -> None:
        await self._runner.call(self._permissions.add_member, group, member)

    async def remove_member(self, group: str, member: str) -> bool:
        return await self._runner.call(self._permissions.remove_member, group, member)

    async def check(self, principal: str, action: str, model: type, key: Any) -> bool:
        return await self._runner.call(self._permissions.check, principal, action, model, key)

    async def check_many(self, queries: Iterable[tuple[str, str, type, Any]]) -> list[bool]:
        return await self._runner.call(
            self._permissions.check_many,
            list(_validate.collection("permissions", "queries", queries)),
        )

    async def explain(self, principal: str, action: str, model: type, key: Any) -> Explanation:
        return await self._runner.call(self._permissions.explain, principal, action, model, key)

    def list_objects(
        self, principal: str, action: str, model: type, *, page_size: int = 100
    ) -> AsyncIterator[Any]:
        source = self._permissions.list_objects(principal, action, model, page_size=page_size)
        return _Pages(self._runner, source, page_size)


class AsyncioDatabase:
    """An open database for asyncio code; from `open_asyncio`."""

    def __init__(self, database: Database, runner: Runner) -> None:
        self._database = database
        self._runner = runner
        self.permissions = AsyncioPermissions(database, runner)

    def __repr__(self) -> str:
        return f"<netabase.AsyncioDatabase {self._database.url}>"

    @property
    def url(self) -> str:
        return self._database.url

    @property
    def models(self) -> tuple[type, ...]:
        return self._database.models

    def store(self, model: type[T]) -> AsyncioStore[T]:
        return AsyncioStore(self._database.store(model), self._runner)

    def stats(self) -> DatabaseStats:
        """Per-actor statistics (a snapshot; cheap, reads counters only)."""
        return self._database.stats()


@asynccontextmanager
async def open_asyncio(
    url: str, *, models: Iterable[type], bridge: Bridge = "guest", **options: Any
) -> AsyncIterator[AsyncioDatabase]:
    """`netabase.open` for asyncio (and anyio on asyncio): ``async with open_asyncio(...) as db``.

    ``bridge="guest"`` (default) runs trio in guest mode on this loop's thread;
    ``bridge="thread"`` runs it on a dedicated thread. Options are those of `netabase.open`.
    """
    chosen = list(_validate.collection("open", "models", models))  # before any thread starts
    if bridge not in ("guest", "thread"):
        raise ValidationError(
            "open", f"must be 'guest' or 'thread', got {bridge!r}", field="bridge"
        )
    runner: Runner
    if bridge == "guest":
        runner = await acquire_guest()
    else:
        runner = ThreadRunner()
        await runner.start()
    try:
        manager = open_database(url, models=chosen, **options)
        holder = await runner.call(enter, runner.nursery, manager)
        try:
            assert holder.value is not None
            yield AsyncioDatabase(holder.value, runner)
        finally:
            await runner.call(leave, holder)
    finally:
        if isinstance(runner, GuestRunner):
            await release_guest(runner)
        else:
            await runner.stop()
