"""Exceptions injected inside store actors' batches: no half-applied write, others keep serving."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
import trio
import trio.lowlevel

import netabase
from netabase.actors._mailbox import Request
from netabase.testing import check_integrity

from ..link_models import LINK_MODELS, Client, Product, Purchase

POINTS = ("batch", "commit", "committed")


def _chaos(db: netabase.Database, model: type, rng: random.Random, rate: float) -> list[str]:
    """Make ``model``'s actor raise at a random point of some batches; returns the log."""
    log: list[str] = []

    def hook(point: str, batch: Sequence[Request]) -> None:
        if point in POINTS and rng.random() < rate:
            log.append(point)
            raise RuntimeError(f"chaos at {point}")

    db._runtime.actor_for(model).fault_hook = hook
    return log


async def test_crashes_never_half_apply_and_other_stores_keep_serving(backend_url: str) -> None:
    rng = random.Random(7)
    async with netabase.open(backend_url, models=LINK_MODELS, max_restarts=100_000) as db:
        clients, purchases, products = db.store(Client), db.store(Purchase), db.store(Product)
        await clients.insert_many([Client(f"c{i}") for i in range(20)])
        await products.insert(Product("steady"))
        purchase_crashes = _chaos(db, Purchase, rng, 0.15)
        client_crashes = _chaos(db, Client, rng, 0.05)
        outcomes: dict[tuple[int, ...], str] = {}
        steady_reads = 0

        async def writer(n: int) -> None:
            for i in range(40):
                keys = tuple(n * 1000 + i * 3 + j for j in range(3))
                batch = [Purchase(k, f"c{k % 20}") for k in keys]
                try:
                    await purchases.insert_many(batch)
                    outcomes[keys] = "ok"
                except netabase.ActorCrashed:
                    outcomes[keys] = "crashed"

        async def steady() -> None:
            nonlocal steady_reads
            for _ in range(300):
                assert await products.get("steady") == Product("steady")
                steady_reads += 1
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for n in range(16):
                nursery.start_soon(writer, n)
            nursery.start_soon(steady)
        db._runtime.actor_for(Purchase).fault_hook = None
        db._runtime.actor_for(Client).fault_hook = None
        for keys, outcome in outcomes.items():
            present = [p is not None for p in await purchases.get_many(list(keys))]
            if outcome == "ok":
                assert all(present), f"acknowledged {keys} lost"
            else:
                assert all(present) or not any(present), f"{keys} half applied: {present}"
        assert await check_integrity(db) == []
        assert steady_reads == 300
        assert len(purchase_crashes) > 5 and "crashed" in outcomes.values()
        stats = db.stats().actors
        assert stats["Purchase"].restarts == len(purchase_crashes)
        assert stats["Client"].restarts == len(client_crashes)


@pytest.mark.parametrize("backend_kind", ["memory"], indirect=True)
async def test_a_crash_loop_fails_the_runtime_instead_of_spinning(backend_url: str) -> None:
    with pytest.raises(netabase.RuntimeFailed):
        async with netabase.open(backend_url, models=LINK_MODELS, max_restarts=3) as db:
            _chaos(db, Client, random.Random(1), 1.0)
            for _ in range(10):
                with pytest.raises(netabase.NetabaseError):
                    await db.store(Client).get("c")
