"""What the type checker sees: CI runs ``mypy --strict`` on this file, so each `assert_type`
below is checked on every change. Run it too: ``python examples/typed_usage.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, assert_type

import attrs
import trio

import netabase


@netabase.model(key="id")
@attrs.frozen
class Customer:
    id: str
    name: str


@netabase.model(key="id")
@attrs.frozen
class Order:
    id: int
    customer: str = netabase.link(Customer)
    total_cents: int = 0


@netabase.model(key="id")
@attrs.frozen
class Ticket:
    title: str
    id: int = netabase.auto()  # generated on insert: declared last, it is a default like any


async def main() -> None:
    async with netabase.open("memory://", models=[Customer, Order, Ticket]) as db:
        assert_type(db, netabase.Database)
        ticket = await db.store(Ticket).insert(Ticket("first"))
        assert_type(ticket, Ticket)
        assert_type(await db.store(Ticket).insert_many([Ticket("more")]), list[Ticket])
        assert ticket.id == 1
        orders = db.store(Order)
        assert_type(orders, netabase.Store[Order])
        await db.store(Customer).insert(Customer("c1", "Ann"))
        await orders.insert(Order(1, "c1", 990))
        one = await orders.get(1)
        assert_type(one, Order | None)
        many = await orders.get_many([1, 2])
        assert_type(many, list[Order | None])
        async for order in orders.scan(start=1, stop=100):
            assert_type(order, Order)
        assert_type(await orders.contains(1), bool)
        assert_type(await orders.count(), int)
        assert_type(await db.permissions.check("ann", "read", Order, 1), bool)
        loaded = await orders.get(1, load=["customer"])
        assert_type(loaded, netabase.Loaded[Order] | None)
        assert_type(await db.store(Customer).referrers("c1"), list[netabase.Referrer])
        assert_type(orders.with_options(timeout=1.0), netabase.Store[Order])
        await db.permissions.grant("ann", Order, 1, "read")  # not its customer
        async with db.as_principal("ann") as view:
            assert_type(view, netabase.PrincipalView)
            guarded = view.store(Customer)
            assert_type(guarded, netabase.GuardedStore[Customer])
            assert_type(await guarded.contains("c1"), bool)
            assert_type(await guarded.count(), int)
            assert_type(guarded.with_options(block=False), netabase.GuardedStore[Customer])
            seen = await view.store(Order).get(1, load=["customer"])
            assert_type(seen, netabase.Loaded[Order] | None)
            assert seen is not None and seen["customer"] is None  # ann may not read c1
            assert not await guarded.contains("c1") and await guarded.count() == 0
        assert one == Order(1, "c1", 990) and many == [one, None]
        print("typed usage ok:", one)


def sync_main() -> None:
    with netabase.connect_sync("memory://", models=[Customer, Order]) as db:
        assert_type(db, netabase.SyncDatabase)
        orders = db.store(Order)
        assert_type(orders, netabase.SyncStore[Order])
        db.store(Customer).insert(Customer("c1", "Ann"))
        assert_type(orders.insert_many([Order(1, "c1", 990)]), list[Order])
        assert_type(orders.get(1), Order | None)
        assert_type(orders.get(1, load=["customer"]), netabase.Loaded[Order] | None)
        assert_type(orders.scan(limit=10), Iterator[Order])
        assert_type(orders.with_options(timeout=1.0), netabase.SyncStore[Order])
        assert_type(db.permissions.list_objects("ann", "read", Order), Iterator[Any])
        with db.as_principal("ann") as view:
            assert_type(view, netabase.SyncPrincipalView)
            guarded = view.store(Order)
            assert_type(guarded, netabase.SyncStore[Order])
            assert_type(guarded.contains(1), bool)
            assert_type(guarded.referrers(1), list[netabase.Referrer])


async def asyncio_main() -> None:
    async with netabase.open_asyncio("memory://", models=[Customer, Order]) as db:
        assert_type(db, netabase.AsyncioDatabase)
        orders = db.store(Order)
        assert_type(orders, netabase.AsyncioStore[Order])
        await db.store(Customer).insert(Customer("c1", "Ann"))
        assert_type(await orders.insert(Order(1, "c1", 990)), Order)
        assert_type(await orders.get(1), Order | None)
        assert_type(orders.scan(), AsyncIterator[Order])
        assert_type(await db.permissions.check_record("ann", "write", Order(2, "c1")), bool)
        await db.permissions.grant("ann", Order, 1, "read")
        async with db.as_principal("ann") as view:
            assert_type(view, netabase.AsyncioPrincipalView)
            guarded = view.store(Order).with_options(timeout=2.0)
            assert_type(guarded, netabase.AsyncioStore[Order])
            assert_type(await guarded.count(), int)
            assert_type(await guarded.get(1, load=["customer"]), netabase.Loaded[Order] | None)


if __name__ == "__main__":
    trio.run(main)
    sync_main()
    asyncio.run(asyncio_main())
