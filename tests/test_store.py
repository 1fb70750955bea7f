"""The store API through the actor runtime: one suite, run on memory, LMDB and Redis."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import attrs
import pytest
import trio

import netabase
from netabase.backends import Put, WriteBatch

from .models import ALL_MODELS, Address, Color, Customer, Everything, Note, Order, Pair


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=ALL_MODELS) as database:
        yield database


def everything(n: int = 1) -> Everything:
    return Everything(
        id=uuid.UUID(int=n),
        flag=True,
        count=-(2**40),
        ratio=0.25,
        text="héllo ✓",
        blob=b"\x00\xff",
        when=datetime.datetime(2026, 11, 24, 21, 0, tzinfo=datetime.UTC),
        day=datetime.date(2026, 1, 2),
        price=decimal.Decimal("12.34"),
        color=Color.BLUE,
        address=Address("Main St", None),
        tags=("a", "b"),
        scores=[3, 1, 2],
        labels=frozenset({"x", "y"}),
        extra={"k": 1},
        maybe=None,
        anything={"nested": [1, "two", None, {"deep": b"bytes"}]},
    )


async def test_every_field_kind_round_trips(db: netabase.Database) -> None:
    store = db.store(Everything)
    record = everything()
    await store.insert(record)
    assert await store.get(record.id) == record


async def test_get_many_contains_and_missing(db: netabase.Database) -> None:
    customers = db.store(Customer)
    await customers.insert_many([Customer("a", "A"), Customer("c", "C")])
    assert await customers.get("b") is None
    got = await customers.get_many(["c", "b", "a"])
    assert [c.id if c else None for c in got] == ["c", None, "a"]
    assert await customers.contains("a") and not await customers.contains("b")


async def test_insert_replaces_and_remove_reports(db: netabase.Database) -> None:
    customers = db.store(Customer)
    await customers.insert(Customer("a", "first"))
    await customers.insert(Customer("a", "second"))
    assert await customers.get("a") == Customer("a", "second")
    assert await customers.count() == 1
    assert await customers.remove("a") is True
    assert await customers.remove("a") is False
    assert await customers.get("a") is None
    await customers.insert_many([Customer(str(i), "x") for i in range(5)])
    assert await customers.remove_many(["0", "1", "nope"]) == 2
    assert await customers.count() == 3


async def test_scan_orders_int_keys_numerically(db: netabase.Database) -> None:
    orders = db.store(Order)
    await db.store(Customer).insert(Customer("c", "C"))
    ids = [5, -3, 0, 2**40, -(2**62), 17, 1, 2**63 + 5, -256, 255, 256]
    await orders.insert_many([Order(i, "c") for i in ids])
    assert [o.id async for o in orders.scan()] == sorted(ids)
    assert [o.id async for o in orders.scan(reverse=True)] == sorted(ids, reverse=True)
    assert [o.id async for o in orders.scan(start=0, stop=17)] == [0, 1, 5]
    assert [o.id async for o in orders.scan(start=0, limit=2)] == [0, 1]
    assert [o.id async for o in orders.scan(stop=2, reverse=True, limit=2)] == [1, 0]


async def test_scan_pages_through_everything(db: netabase.Database) -> None:
    customers = db.store(Customer)
    names = [f"k{i:04d}" for i in range(53)]
    await customers.insert_many([Customer(n, n) for n in names])
    assert [c.id async for c in customers.scan(page_size=7)] == names
    backwards = [c.id async for c in customers.scan(page_size=5, reverse=True)]
    assert backwards == names[::-1]
    assert [c.id async for c in customers.scan(page_size=4, limit=10)] == names[:10]


async def test_scan_str_keys_by_prefix_in_unicode_order(db: netabase.Database) -> None:
    customers = db.store(Customer)
    ids = ["b", "a\x00", "ab", "a", "é", "abc", "ac", "z", "ä"]
    await customers.insert_many([Customer(i, i) for i in ids])
    assert [c.id async for c in customers.scan()] == sorted(ids)
    assert [c.id async for c in customers.scan(prefix="ab")] == ["ab", "abc"]
    assert [c.id async for c in customers.scan(prefix="a", reverse=True)] == sorted(
        [i for i in ids if i.startswith("a")], reverse=True
    )


async def test_tuple_keys_scan_by_leading_elements(db: netabase.Database) -> None:
    pairs = db.store(Pair)
    keys = [("b", 1), ("a", 2), ("a", -1), ("ab", 0), ("a", 10), ("a\x00", 3), ("a\x00b", 4)]
    await pairs.insert_many([Pair(k) for k in keys])
    assert [p.key async for p in pairs.scan()] == sorted(keys)
    assert [p.key async for p in pairs.scan(prefix=("a",))] == [("a", -1), ("a", 2), ("a", 10)]
    assert await pairs.get(("a", 2)) == Pair(("a", 2))


async def test_mutable_records_are_not_shared_through_the_cache(db: netabase.Database) -> None:
    notes = db.store(Note)
    await notes.insert(Note(1, "original"))
    first = await notes.get(1)
    assert first is not None
    first.text = "changed locally"
    assert await notes.get(1) == Note(1, "original")
    twice = await notes.get_many([1, 1])
    assert twice[0] is not twice[1]
    async with trio.open_nursery() as nursery:  # callers served by one batch
        got: list[Note | None] = []
        for _ in range(3):
            nursery.start_soon(lambda: _append(got, notes.get(1)))
    assert len({id(note) for note in got}) == 3


async def test_wrong_field_type_names_model_and_field(db: netabase.Database) -> None:
    customers = db.store(Customer)
    with pytest.raises(netabase.ValidationError) as info:
        await customers.insert(Customer("a", 42))  # type: ignore[arg-type]
    assert info.value.model == "Customer" and info.value.field == "name"
    assert "Customer.name" in str(info.value) and "'a'" in str(info.value)
    with pytest.raises(netabase.ValidationError, match="expected a Customer record"):
        await customers.insert(Order(1, "x"))  # type: ignore[arg-type]
    with pytest.raises(netabase.ValidationError, match=r"Customer\.id"):
        await customers.get(123)
    assert await customers.count() == 0


async def test_insert_many_with_one_bad_record_writes_nothing(db: netabase.Database) -> None:
    customers = db.store(Customer)
    batch = [Customer("a", "A"), Customer("b", None)]  # type: ignore[arg-type]
    with pytest.raises(netabase.ValidationError, match=r"Customer\.name"):
        await customers.insert_many(batch)
    assert await customers.count() == 0


async def test_key_too_large(db: netabase.Database) -> None:
    customers = db.store(Customer)
    await customers.insert(Customer("k" * 509, "fits"))  # 1 tag + 509 + 1 terminator
    with pytest.raises(netabase.KeyTooLarge) as info:
        await customers.insert(Customer("k" * 510, "too long"))
    assert info.value.model == "Customer" and info.value.size == 512
    with pytest.raises(netabase.KeyTooLarge):
        await customers.get("k" * 600)


async def test_unknown_model(db: netabase.Database) -> None:
    @netabase.model(key="id")
    @attrs.frozen
    class Stranger:
        id: int

    with pytest.raises(netabase.UnknownModel, match="Stranger"):
        db.store(Stranger)


async def test_corrupt_bytes_affect_only_their_record(db: netabase.Database) -> None:
    customers = db.store(Customer)
    await customers.insert_many([Customer("a", "A"), Customer("c", "C")])
    info = netabase.info_of(Customer)
    assert info is not None
    corrupt = [Put("Customer", info.encode_key("b"), b"\x01\x01garbage\xc1")]
    await db.backend.apply([WriteBatch(tuple(corrupt))])
    with pytest.raises(netabase.CorruptRecord) as caught:
        await customers.get("b")
    assert caught.value.model == "Customer" and caught.value.key == "b"
    assert await customers.get("a") == Customer("a", "A")
    with pytest.raises(netabase.CorruptRecord):
        await customers.get_many(["a", "b"])
    assert [c.id async for c in customers.scan(skip_corrupt=True)] == ["a", "c"]
    with pytest.raises(netabase.CorruptRecord):
        _ = [c async for c in customers.scan()]
    assert await customers.remove("b") is True
    assert [c.id async for c in customers.scan()] == ["a", "c"]


async def test_schema_version_change_is_detected(db: netabase.Database) -> None:
    info = netabase.info_of(Customer)
    assert info is not None
    stale = b"\x01\x07" + info.codec.encode(Customer("v", "V"))[2:]
    await db.backend.apply([WriteBatch((Put("Customer", info.encode_key("v"), stale),))])
    with pytest.raises(netabase.CorruptRecord, match="schema version 7"):
        await db.store(Customer).get("v")


async def test_stats_count_requests_batches_and_cache(db: netabase.Database) -> None:
    customers = db.store(Customer)
    await customers.insert(Customer("a", "A"))
    for _ in range(3):
        await customers.get("a")
    await customers.get("missing")
    stats = db.stats().actors["Customer"]
    assert stats.requests == 5
    assert stats.cache_hits == 3 and stats.cache_misses == 1
    assert stats.max_batch >= 1 and stats.p99_latency >= stats.p50_latency > 0
    assert "Customer" in str(db.stats())


async def test_concurrent_clients_are_batched(db: netabase.Database) -> None:
    customers = db.store(Customer)
    await customers.insert_many([Customer(str(i), "x") for i in range(64)])

    async def client(i: int) -> None:
        for _ in range(5):
            got = await customers.get(str(i))
            assert got is not None and got.id == str(i)

    async with trio.open_nursery() as nursery:
        for i in range(64):
            nursery.start_soon(client, i)
    assert db.stats().actors["Customer"].max_batch > 1


@pytest.mark.parametrize("backend_kind", ["lmdb", "redis"], indirect=True)
async def test_cache_sees_writes_from_another_process(db: netabase.Database) -> None:
    """A write that bypasses this process's actors (as another process's would) is seen."""
    customers = db.store(Customer)
    await customers.insert(Customer("a", "mine"))
    assert await customers.get("a") == Customer("a", "mine")  # now cached
    info = netabase.info_of(Customer)
    assert info is not None
    theirs = info.encode_record(Customer("a", "theirs"))
    await db.backend.apply([WriteBatch((Put("Customer", *theirs),))])
    assert await customers.get("a") == Customer("a", "theirs")


async def test_data_survives_reopen(backend_kind: str, backend_url: str) -> None:
    async with netabase.open(backend_url, models=ALL_MODELS) as first:
        await first.store(Everything).insert(everything(3))
    async with netabase.open(backend_url, models=ALL_MODELS) as second:
        got = await second.store(Everything).get(uuid.UUID(int=3))
    assert (got == everything(3)) is (backend_kind != "memory")


async def test_text_without_a_utf8_form_is_a_validation_error(db: netabase.Database) -> None:
    customers = db.store(Customer)
    lone = "\ud800"  # a lone surrogate: a Python str with no UTF-8 encoding
    for attempt in (
        lambda: customers.get(lone),
        lambda: customers.insert(Customer(lone, "n")),
        lambda: customers.scan(prefix=lone).__anext__(),
    ):
        with pytest.raises(netabase.ValidationError) as info:
            await attempt()
        assert (info.value.model, info.value.field) == ("Customer", "id")
    with pytest.raises(netabase.ValidationError, match="principal"):
        await db.permissions.check(lone, "read", Customer, "c1")
    assert await customers.count() == 0


async def _append(into: list[Any], awaitable: Awaitable[Any]) -> None:
    into.append(await awaitable)
