"""Cross-links on every backend: validation, on_delete rules, unique links, the reverse index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel

import netabase
from netabase.actors._calls import send
from netabase.actors._messages import PlanRemoval
from netabase.testing import check_integrity

from .link_models import LINK_MODELS, Account, Client, Folder, Line, Product, Purchase


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=LINK_MODELS) as database:
        yield database


async def seed(db: netabase.Database) -> None:
    await db.store(Client).insert_many([Client("c1"), Client("c2")])
    await db.store(Product).insert_many([Product("p1"), Product("p2"), Product("p3")])


async def test_link_to_a_missing_record_is_refused(db: netabase.Database) -> None:
    await seed(db)
    purchases = db.store(Purchase)
    with pytest.raises(netabase.LinkViolation) as info:
        await purchases.insert(Purchase(1, "nobody"))
    error = info.value
    assert (error.model, error.field, error.key, error.missing) == (
        "Purchase",
        "client",
        1,
        ("nobody",),
    )
    assert "Purchase.client" in str(error) and "'nobody'" in str(error)
    with pytest.raises(netabase.LinkViolation, match="'p9'"):
        await purchases.insert_many(
            [Purchase(2, "c1", frozenset({"p1"})), Purchase(3, "c1", frozenset({"p1", "p9"}))]
        )
    assert await purchases.count() == 0
    await purchases.insert(Purchase(4, "c1", frozenset({"p1", "p2"})))
    assert await check_integrity(db) == []


async def test_a_self_link_needs_its_target_even_when_the_batch_touched_it(
    db: netabase.Database,
) -> None:
    folders = db.store(Folder)
    # One actor batch: the removal reads "x" (absent); the insert must still be refused.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(folders.remove, "x")
        with pytest.raises(netabase.LinkViolation, match="'x'"):
            await folders.insert(Folder("a", "x"))
    assert await folders.get("a") is None
    await folders.insert_many([Folder("child", "root"), Folder("root")])  # same call: fine
    assert await check_integrity(db) == []


async def test_a_key_repeated_in_one_insert_many_keeps_the_last_record(
    db: netabase.Database,
) -> None:
    await seed(db)
    purchases = db.store(Purchase)
    await purchases.insert_many([Purchase(1, "c1"), Purchase(1, "c2"), Purchase(2, "c1")])
    assert await purchases.get(1) == Purchase(1, "c2")
    assert [r.key for r in await db.store(Client).referrers("c1")] == [2]
    await purchases.insert_many([Purchase(3, "c1"), Purchase(3, "c1")])
    assert await check_integrity(db) == []


async def test_unique_links_can_swap_targets_in_one_call(db: netabase.Database) -> None:
    await seed(db)
    accounts = db.store(Account)
    await accounts.insert_many([Account(1, "c1"), Account(2, "c2")])
    await accounts.insert_many([Account(1, "c2"), Account(2, "c1")])
    assert await accounts.get_many([1, 2]) == [Account(1, "c2"), Account(2, "c1")]
    with pytest.raises(netabase.LinkViolation, match="unique link"):
        await accounts.insert(Account(3, "c1"))
    assert await check_integrity(db) == []


async def test_restrict_refuses_and_lists_referrers(db: netabase.Database) -> None:
    await seed(db)
    await db.store(Purchase).insert_many([Purchase(1, "c1"), Purchase(2, "c1")])
    with pytest.raises(netabase.LinkViolation) as info:
        await db.store(Client).remove("c1")
    assert info.value.referrers == (("Purchase", "client", 1), ("Purchase", "client", 2))
    assert "Purchase.client=1" in str(info.value)
    assert await db.store(Client).contains("c1")
    await db.store(Purchase).remove_many([1, 2])
    assert await db.store(Client).remove("c1") is True
    assert await check_integrity(db) == []


async def test_refusing_a_popular_record_reads_only_its_first_referrers(
    db: netabase.Database,
) -> None:
    await seed(db)
    await db.store(Account).insert(Account(1, "c1"))  # cascades: the probe must not skip it
    await db.store(Purchase).insert_many([Purchase(i, "c1") for i in range(300)])
    with pytest.raises(netabase.LinkViolation) as info:
        await db.store(Client).remove("c1")
    assert "and possibly more" in str(info.value)
    listed = {key for _, _, key in info.value.referrers}
    assert len(listed) == 64 and listed <= set(range(300))  # index order, not key order
    assert await db.store(Client).contains("c1") and await db.store(Account).contains(1)
    assert await db.store(Purchase).count() == 300
    await db.store(Purchase).remove_many(range(300))
    assert await db.store(Client).remove("c1") is True
    assert not await db.store(Account).contains(1)
    assert await check_integrity(db) == []


async def test_a_dry_run_names_what_a_removal_would_touch_and_writes_nothing(
    db: netabase.Database,
) -> None:
    await seed(db)
    await db.store(Account).insert(Account(1, "c1"))
    await db.store(Purchase).insert(Purchase(10, "c1", frozenset({"p1"})))
    await db.store(Line).insert_many([Line((10, 1), 10, "p1"), Line((10, 2), 10)])

    async def preview(model: type, *keys: object) -> tuple[list[tuple[Any, ...]], bool]:
        """(model, key, stored?, removed key it is reached from) per record, and refused?"""
        runtime = db._runtime
        info = runtime.actor_for(model).info
        answer = await send(
            runtime.actor_for(model).mailbox,
            PlanRemoval([info.encode_key(key) for key in keys]),
            deadlines=runtime.deadlines,
            seconds=5,
        )
        shown = [
            (
                r.model,
                runtime.models[r.model].decode_key(r.key),
                r.value is not None,
                info.decode_key(r.origin),
            )
            for r in answer.records
        ]
        return shown, answer.refusal is not None

    assert await preview(Purchase, 10) == (
        [("Purchase", 10, True, 10), ("Line", (10, 1), True, 10), ("Line", (10, 2), True, 10)],
        False,
    )
    assert await preview(Product, "p2", "p1") == (  # set_null rewrites, in reverse-index order
        [
            ("Product", "p2", True, "p2"),
            ("Product", "p1", True, "p1"),
            ("Line", (10, 1), True, "p1"),
            ("Purchase", 10, True, "p1"),
        ],
        False,
    )
    # Refused by the purchase (restrict), and still walked whole: the account it would delete.
    assert await preview(Client, "c1", "gone") == (
        [
            ("Client", "c1", True, "c1"),
            ("Client", "gone", False, "gone"),
            ("Account", 1, True, "c1"),
        ],
        True,
    )
    assert await db.store(Line).count() == 2 and await db.store(Account).contains(1)
    assert await db.store(Purchase).get(10) == Purchase(10, "c1", frozenset({"p1"}))
    assert await check_integrity(db) == []


async def test_cascade_is_transitive_and_atomic(db: netabase.Database) -> None:
    await seed(db)
    await db.store(Account).insert(Account(1, "c2"))
    await db.store(Purchase).insert_many([Purchase(10, "c2"), Purchase(11, "c1")])
    await db.store(Line).insert_many(
        [Line((10, 1), 10, "p1"), Line((10, 2), 10), Line((11, 1), 11)]
    )
    assert await db.store(Purchase).remove(10) is True
    assert [line.id async for line in db.store(Line).scan()] == [(11, 1)]
    # Account cascades from Client, but a Purchase still restricts c2's removal... until gone.
    await db.store(Purchase).insert(Purchase(12, "c2"))
    await db.store(Line).insert(Line((12, 1), 12))
    with pytest.raises(netabase.LinkViolation):
        await db.store(Client).remove("c2")
    assert await db.store(Account).get(1) == Account(1, "c2")  # nothing of the cascade applied
    await db.store(Purchase).remove(12)
    assert await db.store(Client).remove("c2") is True
    assert await db.store(Account).get(1) is None
    assert await check_integrity(db) == []


async def test_set_null_clears_single_and_collection_links(db: netabase.Database) -> None:
    await seed(db)
    await db.store(Purchase).insert(Purchase(1, "c1", frozenset({"p1", "p2"})))
    await db.store(Line).insert(Line((1, 1), 1, "p1"))
    await db.store(Purchase).get(1)  # cached: the cascade must still be visible
    assert await db.store(Product).remove("p1") is True
    assert await db.store(Purchase).get(1) == Purchase(1, "c1", frozenset({"p2"}))
    assert await db.store(Line).get((1, 1)) == Line((1, 1), 1, None)
    assert await check_integrity(db) == []


async def test_unique_link_allows_one_holder(db: netabase.Database) -> None:
    await seed(db)
    accounts = db.store(Account)
    await accounts.insert(Account(1, "c1"))
    with pytest.raises(netabase.LinkViolation, match="already linked by Account key 1"):
        await accounts.insert(Account(2, "c1"))
    with pytest.raises(netabase.LinkViolation, match="unique"):
        await accounts.insert_many([Account(3, "c2"), Account(4, "c2")])
    await accounts.insert(Account(1, "c2"))  # account 1 moves to c2, freeing c1
    await accounts.insert(Account(2, "c1"))
    assert await check_integrity(db) == []


async def test_changing_a_link_moves_its_index_entry(db: netabase.Database) -> None:
    await seed(db)
    purchases = db.store(Purchase)
    await purchases.insert(Purchase(1, "c1"))
    await purchases.insert(Purchase(1, "c2"))
    assert await db.store(Client).referrers("c1") == []
    assert await db.store(Client).referrers("c2") == [netabase.Referrer("Purchase", "client", 1)]
    assert await db.store(Client).remove("c1") is True
    assert await check_integrity(db) == []


async def test_referrers_and_loading_links(db: netabase.Database) -> None:
    await seed(db)
    await db.store(Purchase).insert_many(
        [Purchase(1, "c1", frozenset({"p1", "p2"})), Purchase(2, "c1")]
    )
    await db.store(Line).insert(Line((1, 7), 1, "p2"))
    clients = db.store(Client)
    assert [r.key for r in await clients.referrers("c1")] == [1, 2]
    assert await db.store(Product).referrers("p2", Line, "product") == [
        netabase.Referrer("Line", "product", (1, 7))
    ]
    loaded = await db.store(Purchase).get(1, load=["client", "products"])
    assert loaded is not None
    assert loaded.record == Purchase(1, "c1", frozenset({"p1", "p2"}))
    assert loaded["client"] == Client("c1")
    assert sorted(p.sku for p in loaded["products"]) == ["p1", "p2"]
    with pytest.raises(netabase.ValidationError, match="not link fields"):
        await db.store(Purchase).get(1, load=["id"])
    with pytest.raises(netabase.ValidationError, match="list of link field names"):
        await db.store(Purchase).get(1, load="client")
    with pytest.raises(netabase.ValidationError, match=r"links to it: .*Purchase\.client"):
        await clients.referrers("c1", Purchase, "clinet")


async def test_deep_self_hierarchy_cascades_without_recursion_limits(
    db: netabase.Database,
) -> None:
    folders = db.store(Folder)
    chain = [Folder("f000")] + [Folder(f"f{i:03d}", f"f{i - 1:03d}") for i in range(1, 120)]
    await folders.insert_many(chain)  # parents created in the same batch count as existing
    await folders.insert(Folder("side", "f050"))
    assert await folders.remove("f040") is True
    assert [f.id async for f in folders.scan()] == [f"f{i:03d}" for i in range(40)]
    assert await check_integrity(db) == []


async def test_validation_cache_is_invalidated_by_deletes(db: netabase.Database) -> None:
    await seed(db)
    purchases = db.store(Purchase)
    await purchases.insert(Purchase(1, "c1"))  # c1's existence is now cached
    await purchases.remove(1)
    await db.store(Client).remove("c1")
    with pytest.raises(netabase.LinkViolation, match="'c1'"):
        await purchases.insert(Purchase(2, "c1"))


async def test_concurrent_inserts_and_deletes_leave_no_dangling_link(
    db: netabase.Database,
) -> None:
    """Linking writers race target removals (restrict and cascade rules) from many tasks."""
    clients, products = db.store(Client), db.store(Product)
    purchases, lines = db.store(Purchase), db.store(Line)
    await clients.insert_many([Client(f"c{i}") for i in range(10)])
    await products.insert_many([Product(f"p{i}") for i in range(10)])
    outcomes = {"linked": 0, "refused": 0, "removed": 0, "blocked": 0}

    async def linker(n: int) -> None:
        for i in range(15):
            pid = n * 100 + i
            try:
                await purchases.insert(Purchase(pid, f"c{(n + i) % 10}", frozenset({f"p{i % 10}"})))
                await lines.insert(Line((pid, 0), pid, f"p{(n * i) % 10}"))
                outcomes["linked"] += 1
            except netabase.LinkViolation:
                outcomes["refused"] += 1
            if i % 4 == 3:
                await purchases.remove(pid)

    async def remover(n: int) -> None:
        for i in range(20):
            number = (n + i) % 10
            try:
                if i % 2:
                    removed = await clients.remove(f"c{number}")
                else:
                    removed = await products.remove(f"p{number}")
                outcomes["removed"] += removed
            except netabase.LinkViolation:
                outcomes["blocked"] += 1
            await trio.lowlevel.checkpoint()
            await clients.insert(Client(f"c{number}"))  # bring targets back for the linkers
            await products.insert(Product(f"p{number}"))

    async with trio.open_nursery() as nursery:
        for n in range(12):
            nursery.start_soon(linker, n)
        for n in range(4):
            nursery.start_soon(remover, n)
    assert await check_integrity(db) == []
    assert outcomes["linked"] > 0 and outcomes["removed"] > 0, outcomes


@pytest.mark.parametrize("backend_kind", ["lmdb", "redis"], indirect=True)
async def test_a_database_opened_without_the_referring_models_still_refuses(
    backend_url: str,
) -> None:
    async with netabase.open(backend_url, models=LINK_MODELS) as full:
        await seed(full)
        await full.store(Purchase).insert(Purchase(1, "c1"))
    # Another service registers only Client (allowed: Client links to nothing).
    async with netabase.open(backend_url, models=[Client]) as partial:
        with pytest.raises(netabase.LinkViolation, match="Purchase not open") as info:
            await partial.store(Client).remove("c1")
        assert "Purchase.client=1" in str(info.value)
        assert await partial.store(Client).remove("c2") is True  # nothing links to c2
    async with netabase.open(backend_url, models=LINK_MODELS) as full:
        assert await check_integrity(full) == []


async def test_a_tuple_key_target_and_a_tuple_of_links_load_position_by_position() -> None:
    @netabase.model(key="id")
    @attrs.frozen
    class Slot:
        id: tuple[str, int]

    @netabase.model(key="id")
    @attrs.frozen
    class Booking:
        id: int
        slot: tuple[str, int] = netabase.link(Slot)  # a single link to a tuple key
        also: tuple[tuple[str, int], ...] = netabase.link(Slot, default=())

    async with netabase.open("memory://", models=[Slot, Booking]) as db:
        await db.store(Slot).insert_many([Slot(("mon", 9)), Slot(("tue", 9))])
        await db.store(Booking).insert(Booking(1, ("mon", 9), (("tue", 9), ("tue", 9), ("mon", 9))))
        loaded = await db.store(Booking).get(1, load=["slot", "also"])
        assert loaded is not None and loaded["slot"] == Slot(("mon", 9))
        assert loaded["also"] == (Slot(("tue", 9)), Slot(("tue", 9)), Slot(("mon", 9)))
        with pytest.raises(netabase.LinkViolation):
            await db.store(Booking).insert(Booking(2, ("wed", 9)))
