"""The shop workload: customers, products and orders served by many concurrent clients.

Run by ``netabase demo`` and ``examples/shop.py``. Each client loops: look up a customer and a
few products, place an order that links to them (validated by the stores that own them), read
it back, and now and then cancel one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import attrs
import trio

import netabase


@netabase.model(key="id")
@attrs.frozen
class Customer:
    id: str
    name: str
    email: str


@netabase.model(key="sku")
@attrs.frozen
class Product:
    sku: str
    title: str
    price_cents: int


@netabase.model(key="id")
@attrs.frozen
class Order:
    id: int
    customer: str = netabase.link(Customer, on_delete="cascade")
    products: tuple[str, ...] = netabase.link(Product, default=())
    total_cents: int = 0


MODELS = [Customer, Product, Order]


@attrs.define
class Settings:
    url: str = "lmdb://./shop.db"
    clients: int = 64
    seconds: float = 5.0
    customers: int = 1_000
    products: int = 200


@attrs.define
class Result:
    """What a run did: counts, elapsed wall time and the runtime's statistics at the end."""

    settings: Settings
    elapsed: float
    operations: int
    orders_placed: int
    orders_stored: int
    stats: netabase.DatabaseStats

    def summary(self) -> str:
        return (
            f"{self.settings.clients} clients for {self.elapsed:.1f}s on {self.settings.url}\n"
            f"  {self.operations / self.elapsed:,.0f} store operations/s, "
            f"{self.orders_placed / self.elapsed:,.0f} orders placed/s (durable on return)\n"
            f"  orders stored: {self.orders_stored:,}"
        )


async def seed(db: netabase.Database, customers: int, products: int) -> None:
    await db.store(Customer).insert_many(
        Customer(f"c{i:05d}", f"Customer {i}", f"c{i}@example.com") for i in range(customers)
    )
    await db.store(Product).insert_many(
        Product(f"p{i:04d}", f"Product {i}", 100 + 7 * i) for i in range(products)
    )


async def _client(
    db: netabase.Database, number: int, deadline: float, counts: dict[str, int], s: Settings
) -> None:
    rng = random.Random(number)
    customers, products, orders = db.store(Customer), db.store(Product), db.store(Order)
    next_id = number * 10_000_000
    while trio.current_time() < deadline:
        customer = await customers.get(f"c{rng.randrange(s.customers):05d}")
        skus = [f"p{rng.randrange(s.products):04d}" for _ in range(rng.randint(1, 3))]
        chosen = [p for p in await products.get_many(skus) if p is not None]
        assert customer is not None and chosen
        next_id += 1
        order = Order(
            next_id, customer.id, tuple(p.sku for p in chosen), sum(p.price_cents for p in chosen)
        )
        await orders.insert(order)
        assert await orders.get(order.id) == order
        counts["ops"] += 4
        counts["orders"] += 1
        if rng.random() < 0.1:
            await orders.remove(order.id)
            counts["ops"] += 1


async def run(settings: Settings, progress: Callable[[float], None] | None = None) -> Result:
    """Seed the shop, run the clients for ``settings.seconds``, and report.

    ``progress`` is called about ten times a second with the fraction of the run done.
    """
    async with netabase.open(settings.url, models=MODELS) as db:
        await seed(db, settings.customers, settings.products)
        counts = {"ops": 0, "orders": 0}
        started = time.perf_counter()
        deadline = trio.current_time() + settings.seconds
        async with trio.open_nursery() as nursery:
            for number in range(settings.clients):
                nursery.start_soon(_client, db, number, deadline, counts, settings)
            if progress is not None:
                while (left := deadline - trio.current_time()) > 0:
                    progress(1 - left / settings.seconds)
                    await trio.sleep(min(0.1, left))
                progress(1.0)
        elapsed = time.perf_counter() - started
        stored = await db.store(Order).count()
        return Result(settings, elapsed, counts["ops"], counts["orders"], stored, db.stats())
