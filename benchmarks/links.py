"""Cross-link costs: validated inserts against plain inserts, and cascade deletes by fan-out.

    python benchmarks/links.py [--quick]

64 clients insert orders; with links every insert names a customer that must exist (checked
through the customer actor, cached, and pinned by a condition in the write). Both runs use the
same record shape and backend, measured in this run.
"""

from __future__ import annotations

import argparse
import time

import attrs
import trio
from _common import best_of, ratio, scratch_dir, table

import netabase

CLIENTS = 64


@netabase.model(key="id")
@attrs.frozen
class Customer:
    id: str


@netabase.model(key="id")
@attrs.frozen
class LinkedOrder:
    id: int
    customer: str = netabase.link(Customer, on_delete="cascade")
    total: int = 0


@netabase.model(key="id")
@attrs.frozen
class HeldOrder:
    """Keeps its customer from being removed (restrict)."""

    id: int
    customer: str = netabase.link(Customer)


@netabase.model(key="id")
@attrs.frozen
class PlainOrder:
    id: int
    customer: str = ""
    total: int = 0


MODELS = [Customer, LinkedOrder, HeldOrder, PlainOrder]


class Config:
    per_client = 200
    customers = 1000
    repeats = 3
    fanouts = (10, 100, 1000, 10_000)


async def inserts(url: str, model: type) -> float:
    async with netabase.open(url, models=MODELS) as db:
        await db.store(Customer).insert_many(Customer(f"c{i}") for i in range(Config.customers))
        store = db.store(model)

        async def client(n: int) -> None:
            for i in range(Config.per_client):
                oid = n * Config.per_client + i
                await store.insert(model(oid, f"c{oid % Config.customers}", i))

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for n in range(CLIENTS):
                nursery.start_soon(client, n)
        return CLIENTS * Config.per_client / (time.perf_counter() - started)


async def referred(db: netabase.Database, customer: str, model: type, fanout: int) -> None:
    """A customer and ``fanout`` records of ``model`` linking to it, a thousand per call."""
    await db.store(Customer).insert(Customer(customer))
    for start in range(0, fanout, 1000):
        await db.store(model).insert_many(
            model(i, customer) for i in range(start, min(fanout, start + 1000))
        )


async def cascade(url: str, fanout: int) -> float:
    """Seconds to remove one customer whose removal cascades to ``fanout`` orders."""
    async with netabase.open(url, models=MODELS) as db:
        await referred(db, "big", LinkedOrder, fanout)
        orders = db.store(LinkedOrder)
        started = time.perf_counter()
        assert await db.store(Customer).remove("big")
        elapsed = time.perf_counter() - started
        assert await orders.count() == 0
        return elapsed


async def refusal(url: str, fanout: int) -> float:
    """Seconds to refuse removing a customer that ``fanout`` restrict referrers hold."""
    async with netabase.open(url, models=MODELS) as db:
        await referred(db, "held", HeldOrder, fanout)
        attempts = 20
        started = time.perf_counter()
        for _ in range(attempts):
            try:
                await db.store(Customer).remove("held")
            except netabase.LinkViolation:
                pass
            else:
                raise AssertionError("the removal should have been refused")
        return (time.perf_counter() - started) / attempts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        Config.per_client, Config.repeats, Config.fanouts = 50, 1, (10, 100, 1000)
    tmp = scratch_dir("netabase-bench-links-")
    count = iter(range(1_000_000))
    print(f"{CLIENTS} clients x {Config.per_client} inserts; median of {Config.repeats} runs")
    for label, url in (("memory", "memory://"), ("lmdb", None)):

        def fresh(model: type, url: str | None = url) -> float:
            target = url or f"lmdb://{tmp / f'db{next(count)}'}"
            return trio.run(inserts, target, model)

        plain = best_of(Config.repeats, lambda: fresh(PlainOrder))
        linked = best_of(Config.repeats, lambda: fresh(LinkedOrder))
        table(
            f"inserts on {label}",
            [
                ("plain insert (no links)", plain, "baseline"),
                ("validated insert (1 link)", linked, ratio(linked, plain, 0.5)),
            ],
        )
    print("\ncascade delete on lmdb (one transaction, durable)")
    for fanout in Config.fanouts:
        seconds = trio.run(cascade, f"lmdb://{tmp / f'cascade{fanout}'}", fanout)
        per = seconds / fanout * 1e6
        print(f"  {fanout:>6} referrers  {seconds * 1e3:9.1f} ms  {per:7.1f} µs/referrer")
    print("\nrefused removal on lmdb (restrict referrers; reads the first 64)")
    for fanout in Config.fanouts:
        seconds = trio.run(refusal, f"lmdb://{tmp / f'refusal{fanout}'}", fanout)
        print(f"  {fanout:>6} referrers  {seconds * 1e3:9.2f} ms per refused remove")


if __name__ == "__main__":
    main()
