"""Cancellation at every checkpoint of a transaction, every backend: before the end of the
block nothing is applied, after it the shielded commit applies everything; never a part, and
no snapshot is left open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.lowlevel

import netabase

from .tx_models import TX_MODELS, Balance, Customer, Order

MAX_STEPS = 400
"""More scheduling steps than the transaction takes on any backend."""


class CancelAtStep(trio.abc.Instrument):
    """Cancels ``scope`` as ``task`` resumes for the ``at``-th time (0: at once)."""

    def __init__(self, scope: trio.CancelScope, at: int) -> None:
        self.scope = scope
        self.at = at
        self.steps = 0
        self.task: trio.lowlevel.Task | None = None
        self.fired_after_body = False
        self.body_done = False

    def watch(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        if self.at == 0:
            self.scope.cancel()

    @property
    def fired(self) -> bool:
        return self.at <= self.steps

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is not self.task:
            return
        self.steps += 1
        if self.steps == self.at:
            self.fired_after_body = self.body_done
            self.scope.cancel()


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=TX_MODELS) as database:
        yield database


async def _reset(db: netabase.Database) -> None:
    await db.store(Customer).remove_many(["c1", "c2"])  # cascades to their orders
    await db.store(Balance).remove_many(["a", "b", "c"])
    await db.store(Balance).insert_many([Balance("a", 10), Balance("b", 20)])
    await db.store(Customer).insert(Customer("c1", "c1@example.com"))
    await db.store(Order).insert_many([Order(1, "c1", 5), Order(2, "c1", 6)])


async def _contents(db: netabase.Database) -> dict[str, list[Any]]:
    return {
        model.__name__: [r async for r in db.store(model).scan()]
        for model in (Balance, Customer, Order)
    }


async def _transaction(db: netabase.Database, instrument: CancelAtStep) -> None:
    async with db.transaction() as tx:
        accounts = tx.store(Balance)
        a = await accounts.get("a")
        assert a is not None
        total = sum([r.cents async for r in accounts.scan()])
        await accounts.insert(Balance("c", total + a.cents))
        assert await accounts.remove("b") is True
        assert await tx.store(Customer).remove("c1") is True  # cascades to orders 1 and 2
        await tx.store(Customer).insert(Customer("c2", "c1@example.com"))  # the freed email
        await tx.store(Order).insert(Order(3, "c2", 7))
        instrument.body_done = True
    await trio.lowlevel.checkpoint()  # a cancel that arrived during the commit lands here


async def test_cancelled_at_any_checkpoint_a_transaction_is_all_or_nothing(
    db: netabase.Database,
) -> None:
    await _reset(db)
    before = await _contents(db)
    after = {
        "Balance": [Balance("a", 10), Balance("c", 40)],
        "Customer": [Customer("c2", "c1@example.com")],
        "Order": [Order(3, "c2", 7)],
    }
    outcomes = {"untouched": 0, "applied while cancelled": 0}
    for at in range(MAX_STEPS):
        await _reset(db)
        scope = trio.CancelScope()
        instrument = CancelAtStep(scope, at)

        async def attempt(instrument: CancelAtStep = instrument, scope: Any = scope) -> None:
            instrument.watch(trio.lowlevel.current_task())
            with scope:
                await _transaction(db, instrument)

        trio.lowlevel.add_instrument(instrument)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(attempt)
        finally:
            trio.lowlevel.remove_instrument(instrument)
        state = await _contents(db)
        if not instrument.fired:  # the whole transaction ran in fewer steps: all were tried
            assert state == after
            break
        assert scope.cancelled_caught, at
        if instrument.body_done:
            assert state == after, at  # past the commit point: applied whole
            outcomes["applied while cancelled"] += instrument.fired_after_body
        else:
            assert state == before, at  # cancelled inside the block: nothing applied
            outcomes["untouched"] += 1
        assert len(db._runtime.leases) == 0, at
        assert not getattr(db.backend, "_snapshots", ()), at  # no snapshot left open
    else:
        pytest.fail(f"the transaction took more than {MAX_STEPS} steps")
    assert outcomes["untouched"] >= 8  # a checkpoint in every operation at least
    assert outcomes["applied while cancelled"] >= 1
    assert all(stats.restarts == 0 for stats in db.stats().actors.values())
