"""What the type checker sees: CI runs ``mypy --strict`` on this file, so each `assert_type`
below is checked on every change. Run it too: ``python examples/typed_usage.py``.
"""

from __future__ import annotations

from typing import assert_type

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


async def main() -> None:
    async with netabase.open("memory://", models=[Customer, Order]) as db:
        assert_type(db, netabase.Database)
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
        assert one == Order(1, "c1", 990) and many == [one, None]
        print("typed usage ok:", one)


if __name__ == "__main__":
    trio.run(main)
