"""Adversarial review of the enforced store's new surface, the adapters, the parity test and
the URL registry: each test here failed before the fix next to it."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import typing
import warnings
from typing import Any, TypeVar

import attrs
import pytest
import trio

import netabase
from netabase import Store
from netabase.adapters import _generate
from netabase.backends._url import open_backend, redact_url

from .test_adapter_parity import drift, surface
from .test_enforced_view import Door, Folder, Note, Space, db, race

__all__ = ["db"]

T = TypeVar("T")

# -- referrers: a referrer is judged on the record that links, as it links -------------------


async def test_referrers_never_reveal_a_link_made_while_the_referrer_was_hidden(
    db: netabase.Database,
) -> None:
    """A note in a hidden folder links to f1; meanwhile it drops the link and its folder is
    moved where the principal may read: the note never linked f1 while readable."""
    await db.permissions.grant("reader", Space, "s1", "read")
    await db.store(Folder).insert(Folder("fh", "s2"))
    await db.store(Note).insert(Note("n1", "fh", see_also="f1"))
    reader = db.as_principal("reader").store(Folder)

    async def meanwhile() -> None:
        await db.store(Note).insert(Note("n1", "fh"))  # the link is gone
        await db.store(Folder).insert(Folder("fh", "s1"))  # and only now is n1 readable

    result = await race(Door(db, None, "judge"), lambda: reader.referrers("f1"), meanwhile)
    assert result == []
    assert await db.store(Folder).referrers("f1") == []


async def test_referrers_leave_out_a_link_dropped_before_the_judgement(
    db: netabase.Database,
) -> None:
    await db.permissions.grant("reader", Space, "s1", "read")
    await db.store(Note).insert(Note("n1", "f2", see_also="f1"))
    reader = db.as_principal("reader").store(Folder)
    result = await race(
        Door(db, None, "judge"),
        lambda: reader.referrers("f1"),
        lambda: db.store(Note).insert(Note("n1", "f2")),
    )
    assert result == []


# -- URLs: an error never shows a password --------------------------------------------------

SECRET = "Zq9s3cr"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://default:{SECRET}/x+y==@host:6379/0",  # base64 passwords hold '/'
        f"redis://u:{SECRET}#x@host/0",
        f"redis://u:{SECRET}?x@host/0",
        f"rediss://u:{SECRET}/a@host:6380/0",
        f"redis:/u:{SECRET}@host/0",  # a typo'd separator
        f"redis//u:{SECRET}@host/0",
        f"redis://host/0?password={SECRET}",  # as redis-py spells it
        f"redis://host/0?timeout=1&password={SECRET}&x=1",
    ],
)
def test_an_invalid_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(netabase.InvalidURL) as caught:
        open_backend(url)
    shown = f"{caught.value} {caught.value!r} {caught.value.args!r}"
    assert SECRET not in shown, shown
    assert SECRET not in redact_url(url)


def test_redaction_keeps_urls_without_a_password() -> None:
    for url in ["redis://host:6379/0?name=a", "lmdb://./data", "memory://", "redis://u@host/0"]:
        assert redact_url(url) == url


# -- the parity test: drift it did not see ---------------------------------------------------


@pytest.mark.parametrize("kind", [classmethod, staticmethod])
def test_a_classmethod_or_staticmethod_added_to_store_is_drift(kind: Any) -> None:
    def frobnicate(*args: Any) -> int:
        return 0

    class Grown(netabase.Store[Any]):
        pass

    Grown.frobnicate = kind(frobnicate)  # type: ignore[attr-defined]
    assert drift(Grown, netabase.SyncStore, "Sync") == ["SyncStore lacks frobnicate"]


def test_the_generator_refuses_what_it_cannot_adapt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A classmethod (or a constant) on `Store` was skipped: the adapters silently lacked it."""
    monkeypatch.setattr(netabase.Store, "opened", classmethod(lambda cls: 0), raising=False)
    with pytest.raises(NotImplementedError, match=r"Store\.opened: a classmethod"):
        _generate.render(_generate.SYNC)


# -- adapters: a call after close names the method -------------------------------------------


@netabase.model(key="id")
@attrs.frozen
class Item:
    id: str


def test_a_scan_after_close_names_the_method_not_its_crossing() -> None:
    with netabase.connect_sync("memory://", models=[Item]) as db:
        store = db.store(Item)
        store.insert_many([Item("a"), Item("b")])
        started = store.scan(page_size=1)
        assert next(started) == Item("a")
        permissions, guarded = db.permissions, db.as_principal("p").store(Item)
    calls = [
        ("SyncStore.scan", lambda: list(store.scan())),
        ("SyncStore.scan", lambda: list(started)),
        ("SyncStore.scan", lambda: list(guarded.scan())),
        ("SyncPermissions.list_objects", lambda: list(permissions.list_objects("p", "read", Item))),
    ]
    for name, call in calls:
        with pytest.raises(netabase.Closed, match=rf"cannot serve {name}$"):
            call()


@pytest.mark.parametrize("bridge", ["guest", "thread"])
def test_an_asyncio_scan_after_close_names_the_method(bridge: Any) -> None:
    async def main() -> None:
        async with netabase.open_asyncio("memory://", models=[Item], bridge=bridge) as db:
            store, permissions = db.store(Item), db.permissions
        with pytest.raises(netabase.Closed, match=r"cannot serve AsyncioStore\.scan$"):
            await store.scan().__anext__()
        listed = permissions.list_objects("p", "read", Item)
        with pytest.raises(
            netabase.Closed, match=r"cannot serve AsyncioPermissions\.list_objects$"
        ):
            await listed.__anext__()

    asyncio.run(main())


def test_a_factory_that_returns_no_backend_is_named_at_open() -> None:
    """It failed inside the runtime with "'int' object has no attribute 'start'"."""
    netabase.register_backend("rvnotabackend", lambda _: 42)
    with pytest.raises(TypeError, match=r"factory of rvnotabackend:// returned int, not a"):
        open_backend("rvnotabackend://x")


# -- adapters: an iterator left unfinished ---------------------------------------------------


def test_an_unfinished_enforced_scan_or_listing_needs_no_finalizing() -> None:
    """Both were async generators: one a sync caller dropped (it has no way to ``aclose`` it)
    was finalized by the garbage collector, with a `ResourceWarning`, on the trio thread."""
    with netabase.connect_sync("memory://", models=[Item]) as db:
        db.store(Item).insert_many([Item(str(i)) for i in range(6)])
        for key in "135":
            db.permissions.grant("p", Item, key, "read")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scan = db.as_principal("p").store(Item).scan(page_size=1)
            assert next(scan) == Item("1")
            listing = db.permissions.list_objects("p", "read", Item, page_size=1)
            assert next(listing) == "1"
            del scan, listing
            gc.collect()
            db.store(Item).count()  # the trio thread has run what the collector handed it
        assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
        guarded = db.as_principal("p").store(Item)
        assert list(guarded.scan(limit=2, page_size=1)) == [Item("1"), Item("3")]
        assert list(guarded.scan(limit=0)) == []
        assert list(db.permissions.list_objects("p", "read", Item, page_size=2)) == ["1", "3", "5"]


async def test_no_iterator_of_the_trio_api_is_an_async_generator() -> None:
    """Every member returning an `AsyncIterator` is listed here, so a new one is checked too."""
    returning = {
        (cls.__name__, name)
        for cls in (netabase.Store, netabase.GuardedStore, netabase.Permissions)
        for name, member in surface(cls).items()
        if str(member.returns).startswith("AsyncIterator[")
    }
    async with netabase.open("memory://", models=[Item]) as db:
        made = {
            ("Store", "scan"): db.store(Item).scan(),
            ("GuardedStore", "scan"): db.as_principal("p").store(Item).scan(),
            ("Permissions", "list_objects"): db.permissions.list_objects("p", "read", Item),
        }
        assert set(made) == returning
        for name, iterator in made.items():
            assert not inspect.isasyncgen(iterator), name
            assert [item async for item in iterator] == [], name


# -- with_options reaches every request the enforced view makes for the caller ---------------


async def test_with_options_applies_to_the_records_get_load_fetches(
    db: netabase.Database,
) -> None:
    """`Store.get(load=)` fetches the linked records under the view's options; the enforced
    view fetched them under the database's (``block=False`` waited at a full mailbox)."""
    await db.store(Note).insert(Note("n1", "f1"))
    await db.permissions.grant("reader", Space, "s1", "read")
    reader = db.as_principal("reader").store(Note).with_options(block=False)
    door = Door(db, Folder, "get_many")  # the Folder mailbox looks full meanwhile
    outcome: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def load() -> None:
            try:
                outcome.append(await reader.get("n1", load=["folder"]))
            except netabase.Overloaded as exc:
                outcome.append(exc)
            nursery.cancel_scope.cancel()

        nursery.start_soon(load)
        await door.reached.wait()
        outcome.append("waited at the full mailbox")
        door.open()
    assert isinstance(outcome[0], netabase.Overloaded), outcome


def _grown(change: str) -> type:
    """`Store` with one change to its surface."""
    namespace: dict[str, Any] = {}
    if change == "property":
        namespace["shard"] = property(lambda self: 0)
        namespace["shard"].fget.__annotations__ = {"return": "int"}
    elif change == "cached_property":
        namespace["shard"] = functools.cached_property(lambda self: 0)
        namespace["shard"].func.__annotations__ = {"return": "int"}
    elif change == "keyword-only":

        async def remove(self: Any, *, key: Any) -> bool:  # was positional
            return False

        namespace["remove"] = remove
    elif change == "positional":

        def with_options(
            self: Any, timeout: float | None = None, block: bool | None = None
        ) -> Store[T]:
            return self  # type: ignore[no-any-return]

        namespace["with_options"] = with_options
    elif change == "async generator":

        async def scan(self: Any, **options: Any) -> Any:
            yield None

        namespace["scan"] = scan
    elif change == "default":

        async def get_many(self: Any, keys: Any = ()) -> Any:
            return []

        namespace["get_many"] = get_many
    elif change == "overload":

        @typing.overload
        async def get(self: Any, key: Any, *, load: None = None) -> Any: ...

        @typing.overload
        async def get(self: Any, key: Any, *, load: list[str]) -> Any: ...

        async def get(self: Any, key: Any, *, load: Any = None) -> Any:
            return None

        namespace["get"] = get
    return type("Grown", (netabase.Store,), namespace)


@pytest.mark.parametrize(
    "change",
    [
        "property",
        "cached_property",
        "keyword-only",
        "positional",
        "async generator",
        "default",
        "overload",
    ],
)
def test_each_kind_of_change_to_store_is_drift_for_every_adapter(change: str) -> None:
    grown = _grown(change)
    for adapter, prefix in [
        (netabase.SyncStore, "Sync"),
        (netabase.AsyncioStore, "Asyncio"),
        (netabase.GuardedStore, "Guarded"),
    ]:
        assert drift(grown, adapter, prefix), (change, adapter)


# -- contains / count / get(load=) on a record moved while it is judged ----------------------


@pytest.mark.parametrize("call", ["contains", "count"])
async def test_a_record_moved_out_of_view_while_judged_is_not_seen(
    db: netabase.Database, call: str
) -> None:
    await db.permissions.grant("reader", Space, "s1", "read")
    await db.store(Note).insert_many([Note("n1", "f1"), Note("n2", "f1")])
    notes = db.as_principal("reader").store(Note)
    result = await race(
        Door(db, None, "judge"),
        notes.count if call == "count" else lambda: notes.contains("n2"),
        lambda: db.store(Note).insert(Note("n2", "f3")),  # into s2, which it may not read
    )
    assert result == (1 if call == "count" else False)


async def test_a_linked_record_moved_out_of_view_while_judged_is_not_loaded(
    db: netabase.Database,
) -> None:
    await db.permissions.grant("reader", Space, "s1", "read")
    await db.store(Note).insert(Note("n1", "f1", see_also="f2"))
    notes = db.as_principal("reader").store(Note)
    door = Door(db, None, "judge", times=2)  # n1's judgement, then its linked folder's
    outcome: list[Any] = []

    async def load() -> None:
        outcome.append(await notes.get("n1", load=["see_also"]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(load)
        await door.reached.wait()
        door.open()
        await door.reached.wait()  # f2 was read in s1; it moves before it is judged
        await db.store(Folder).insert(Folder("f2", "s2"))
        door.open()
    assert outcome[0] is not None and outcome[0]["see_also"] is None
