"""netabase for scripts and notebooks: ``with connect_sync(url, models=[...]) as db``.

The trio runtime runs on a dedicated thread (`TrioPortal`); each call blocks the calling thread
until its reply, with the same typed API and the same `netabase` exceptions. Several threads may
share one connection: their calls are batched by the actors like concurrent tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, overload

from . import _validate
from ._asyncio import take
from ._database import Database, DatabaseStats, open_database
from ._portal import TrioPortal
from ._roles import Explanation
from ._store import DEFAULT_PAGE_SIZE, Loaded, Store
from .actors._links import Referrer

T = TypeVar("T")


def _pages(portal: TrioPortal, source: Any, page_size: int) -> Iterator[Any]:
    while True:
        page = portal.run(take, source, page_size)
        yield from page
        if len(page) < page_size:
            return


class SyncStore(Generic[T]):
    """`Store[T]` without ``await``; see `Store` for what each method does."""

    def __init__(self, store: Store[T], portal: TrioPortal) -> None:
        self._store = store
        self._portal = portal

    def __repr__(self) -> str:
        return f"<netabase.SyncStore {self._store.model.__name__}>"

    @overload
    def get(self, key: Any) -> T | None: ...

    @overload
    def get(self, key: Any, *, load: Sequence[str]) -> Loaded[T] | None: ...

    def get(self, key: Any, *, load: Sequence[str] | None = None) -> T | Loaded[T] | None:
        if load is None:
            return self._portal.run(self._store.get, key)
        return self._portal.run(lambda: self._store.get(key, load=load))

    def get_many(self, keys: Iterable[Any]) -> list[T | None]:
        return self._portal.run(self._store.get_many, self._store.listed("keys", keys))

    def contains(self, key: Any) -> bool:
        return self._portal.run(self._store.contains, key)

    def count(self) -> int:
        return self._portal.run(self._store.count)

    def insert(self, record: T) -> None:
        self._portal.run(self._store.insert, record)

    def insert_many(self, records: Iterable[T]) -> None:
        self._portal.run(self._store.insert_many, self._store.listed("records", records))

    def remove(self, key: Any) -> bool:
        return self._portal.run(self._store.remove, key)

    def remove_many(self, keys: Iterable[Any]) -> int:
        return self._portal.run(self._store.remove_many, self._store.listed("keys", keys))

    def referrers(
        self, key: Any, model: type | None = None, field: str | None = None
    ) -> list[Referrer]:
        return self._portal.run(self._store.referrers, key, model, field)

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
    ) -> Iterator[T]:
        """Records in key order, fetched a page at a time as you iterate."""
        source = self._store.scan(
            start=start,
            stop=stop,
            prefix=prefix,
            limit=limit,
            reverse=reverse,
            page_size=page_size,
            skip_corrupt=skip_corrupt,
        )
        return _pages(self._portal, source, page_size)


class SyncPermissions:
    """`Permissions` without ``await``."""

    def __init__(self, database: Database, portal: TrioPortal) -> None:
        self._permissions = database.permissions
        self._portal = portal

    def grant(self, principal: str, model: type, key: Any, role: str) -> None:
        self._portal.run(self._permissions.grant, principal, model, key, role)

    def revoke(self, principal: str, model: type, key: Any, role: str | None = None) -> int:
        return self._portal.run(self._permissions.revoke, principal, model, key, role)

    def add_member(self, group: str, member: str) -> None:
        self._portal.run(self._permissions.add_member, group, member)

    def remove_member(self, group: str, member: str) -> bool:
        return self._portal.run(self._permissions.remove_member, group, member)

    def check(self, principal: str, action: str, model: type, key: Any) -> bool:
        return self._portal.run(self._permissions.check, principal, action, model, key)

    def check_many(self, queries: Iterable[tuple[str, str, type, Any]]) -> list[bool]:
        return self._portal.run(
            self._permissions.check_many,
            list(_validate.collection("permissions", "queries", queries)),
        )

    def explain(self, principal: str, action: str, model: type, key: Any) -> Explanation:
        return self._portal.run(self._permissions.explain, principal, action, model, key)

    def list_objects(
        self, principal: str, action: str, model: type, *, page_size: int = 100
    ) -> Iterator[Any]:
        source = self._permissions.list_objects(principal, action, model, page_size=page_size)
        return _pages(self._portal, source, page_size)


class SyncDatabase:
    """An open database for synchronous code; from `connect_sync`."""

    def __init__(self, database: Database, portal: TrioPortal) -> None:
        self._database = database
        self._portal = portal
        self.permissions = SyncPermissions(database, portal)

    def __repr__(self) -> str:
        return f"<netabase.SyncDatabase {self._database.url}>"

    @property
    def url(self) -> str:
        return self._database.url

    @property
    def models(self) -> tuple[type, ...]:
        return self._database.models

    def store(self, model: type[T]) -> SyncStore[T]:
        return SyncStore(self._database.store(model), self._portal)

    def stats(self) -> DatabaseStats:
        """Per-actor statistics (a snapshot; cheap, reads counters only)."""
        return self._database.stats()


@contextmanager
def connect_sync(url: str, *, models: Iterable[type], **options: Any) -> Iterator[SyncDatabase]:
    """`netabase.open` for synchronous code; options are those of `netabase.open`.

    Leaving the block drains and closes the runtime and ends its thread.
    """
    chosen = list(_validate.collection("open", "models", models))  # before any thread starts
    portal = TrioPortal("netabase-sync")
    portal.start()
    try:
        held = portal.enter(open_database(url, models=chosen, **options))
        try:
            yield SyncDatabase(held.value, portal)
        finally:
            held.close()
    finally:
        portal.stop()
