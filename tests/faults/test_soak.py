"""A bounded soak: many clients, mixed reads, writes, links and permission checks.

Runs ``NETABASE_SOAK_SECONDS`` (default 6) per backend, then checks the invariants (no dangling
link, index equal to a recomputation, nothing acknowledged lost) and that memory stayed flat:
caches and mailboxes are bounded, and the process's resident size did not keep growing.
"""

from __future__ import annotations

import os
import random
import time
from array import array

import pytest
import trio

import netabase
from netabase.testing import check_integrity

from ..link_models import LINK_MODELS, Client, Product, Purchase

SECONDS = float(os.environ.get("NETABASE_SOAK_SECONDS", "6"))
CLIENTS = 48
CACHE = 300


def anonymous_mib() -> float:
    """Resident anonymous memory (the heap): unlike RSS it leaves out LMDB's file-backed map,
    whose resident pages grow with the data and are not a leak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.slow
@pytest.mark.parametrize("backend_kind", ["lmdb", "redis"], indirect=True)
async def test_soak(backend_url: str) -> None:
    async with netabase.open(backend_url, models=LINK_MODELS, cache_size=CACHE) as db:
        clients, products, purchases = db.store(Client), db.store(Product), db.store(Purchase)
        perms = db.permissions
        await clients.insert_many([Client(f"c{i}") for i in range(200)])
        await products.insert_many([Product(f"p{i}") for i in range(50)])
        for i in range(20):
            await perms.grant(f"user{i}", Client, f"c{i}", "read")
        # Compact bookkeeping (~10 bytes per insert) so the heap check measures netabase.
        acked_ids = array("q")
        acked_customers = array("H")
        removed = bytearray()
        counts = {"ops": 0, "refused": 0}
        samples: list[float] = []
        deadline = trio.current_time() + SECONDS

        async def worker(n: int) -> None:
            rng = random.Random(n)
            next_id = n << 40
            while trio.current_time() < deadline:
                roll = rng.random()
                try:
                    if roll < 0.4:
                        await clients.get_many([f"c{rng.randrange(300)}" for _ in range(4)])
                    elif roll < 0.65:
                        next_id += 1
                        customer = rng.randrange(220)
                        sku = frozenset({f"p{rng.randrange(50)}"})
                        await purchases.insert(Purchase(next_id, f"c{customer}", sku))
                        acked_ids.append(next_id)
                        acked_customers.append(customer)
                        removed.append(0)
                    elif roll < 0.75 and acked_ids:
                        victim = rng.randrange(len(acked_ids))
                        if await purchases.remove(acked_ids[victim]):
                            removed[victim] = 1
                    elif roll < 0.85:
                        key = f"c{200 + rng.randrange(20)}"
                        if rng.random() < 0.5:
                            await clients.insert(Client(key))
                        else:
                            await clients.remove(key)
                    else:
                        await perms.check_many(
                            [
                                (
                                    f"user{rng.randrange(30)}",
                                    "read",
                                    Client,
                                    f"c{rng.randrange(30)}",
                                )
                                for _ in range(8)
                            ]
                        )
                except netabase.LinkViolation:
                    counts["refused"] += 1
                counts["ops"] += 1

        async def sampler() -> None:
            while trio.current_time() < deadline:
                samples.append(anonymous_mib())
                await trio.sleep(SECONDS / 8)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sampler)
            for n in range(CLIENTS):
                nursery.start_soon(worker, n)
        elapsed = time.perf_counter() - started

        assert await check_integrity(db) == []
        alive = {
            key: f"c{customer}"
            for key, customer, gone in zip(acked_ids, acked_customers, removed, strict=True)
            if not gone
        }
        found = await purchases.get_many(list(alive))
        assert all(p is not None and p.client == alive[p.id] for p in found)
        for name, stats in db.stats().actors.items():
            assert stats.cache_size <= CACHE, name
            assert stats.mailbox_depth <= stats.mailbox_capacity, name
        assert db._runtime.deadlines.pending() < 1000
        half = samples[len(samples) // 2]
        assert samples[-1] - half < 16, f"heap memory kept growing: {samples}"
        print(
            f"soak {backend_url.split(':')[0]}: {counts['ops']} ops in {elapsed:.1f}s "
            f"({counts['ops'] / elapsed:,.0f}/s), {len(acked_ids)} linked inserts, "
            f"{counts['refused']} refused, heap (RssAnon) MiB {[round(x) for x in samples]}"
        )
