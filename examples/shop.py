"""A shop workload: customers, products and orders served by many concurrent clients.

    python examples/shop.py                       # LMDB in ./shop.db (the embedded default)
    python examples/shop.py memory://             # or any netabase URL
    python examples/shop.py lmdb://./shop.db --clients 64 --seconds 5

Each client loops: look up a customer and a few products, place an order that links to them
(validated against the stores that own them), read it back, and now and then cancel one. At the
end it prints the throughput and the runtime's per-actor statistics.
"""

from __future__ import annotations

import argparse
import random
import time

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


async def seed(db: netabase.Database, customers: int, products: int) -> None:
    await db.store(Customer).insert_many(
        Customer(f"c{i:05d}", f"Customer {i}", f"c{i}@example.com") for i in range(customers)
    )
    await db.store(Product).insert_many(
        Product(f"p{i:04d}", f"Product {i}", 100 + 7 * i) for i in range(products)
    )


async def client(
    db: netabase.Database,
    number: int,
    deadline: float,
    counts: dict[str, int],
    args: argparse.Namespace,
) -> None:
    rng = random.Random(number)
    customers, products, orders = db.store(Customer), db.store(Product), db.store(Order)
    next_id = number * 10_000_000
    while trio.current_time() < deadline:
        customer = await customers.get(f"c{rng.randrange(args.customers):05d}")
        skus = [f"p{rng.randrange(args.products):04d}" for _ in range(rng.randint(1, 3))]
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


async def main(args: argparse.Namespace) -> None:
    async with netabase.open(args.url, models=MODELS) as db:
        await seed(db, args.customers, args.products)
        counts = {"ops": 0, "orders": 0}
        started = time.perf_counter()
        deadline = trio.current_time() + args.seconds
        async with trio.open_nursery() as nursery:
            for number in range(args.clients):
                nursery.start_soon(client, db, number, deadline, counts, args)
        elapsed = time.perf_counter() - started
        print(f"{args.clients} clients for {elapsed:.1f}s on {args.url}")
        print(
            f"  {counts['ops'] / elapsed:,.0f} store operations/s, "
            f"{counts['orders'] / elapsed:,.0f} orders placed/s (durable on return)"
        )
        print(f"  orders stored: {await db.store(Order).count():,}")
        print(db.stats())


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="netabase shop workload")
    parser.add_argument("url", nargs="?", default="lmdb://./shop.db")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--products", type=int, default=200)
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, parse())
