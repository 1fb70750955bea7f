"""Transactions from asyncio and from blocking code: the same semantics through the adapters,
with ``transact``'s function running on the caller's side."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import attrs
import pytest

import netabase

from .tx_models import TX_MODELS, Balance, Customer, Order


@pytest.mark.parametrize("bridge", ["guest", "thread"])
def test_asyncio_transactions_commit_conflict_and_retry(bridge: netabase._asyncio.Bridge) -> None:
    async def main() -> None:
        async with netabase.open_asyncio("memory://", models=TX_MODELS, bridge=bridge) as db:
            await db.store(Balance).insert(Balance("hits", 0))
            async with db.transaction() as tx:
                await tx.store(Customer).insert(Customer("c1"))
                await tx.store(Order).insert(Order(1, "c1", 5))
                assert [o.id async for o in tx.store(Order).scan()] == [1]
            assert await db.store(Order).get(1) == Order(1, "c1", 5)

            async def increment(tx: netabase.AsyncioTransaction, key: str) -> None:
                record = await tx.store(Balance).get(key)
                assert record is not None
                await asyncio.sleep(0)
                await tx.store(Balance).insert(attrs.evolve(record, cents=record.cents + 1))

            await asyncio.gather(*(db.transact(increment, "hits", retries=1000) for _ in range(50)))
            assert await db.store(Balance).get("hits") == Balance("hits", 50)

            with pytest.raises(netabase.TransactionError, match="inside a transaction"):
                async with db.transaction(), db.transaction():
                    pass
            with pytest.raises(netabase.ValidationError, match="async function"):
                await db.transact(42)  # type: ignore[arg-type]

    asyncio.run(main())


def test_blocking_transactions_commit_conflict_and_retry(tmp_path: Path) -> None:
    with netabase.connect_sync(f"lmdb://{tmp_path / 'db'}", models=TX_MODELS) as db:
        db.store(Balance).insert_many([Balance("a", 10), Balance("b", 0)])

        def transfer(tx: netabase.SyncTransaction, src: str, dst: str, cents: int) -> int:
            accounts = tx.store(Balance)
            a, b = accounts.get(src), accounts.get(dst)
            assert a is not None and b is not None
            accounts.insert(attrs.evolve(a, cents=a.cents - cents))
            accounts.insert(attrs.evolve(b, cents=b.cents + cents))
            return a.cents - cents

        threads = [
            threading.Thread(
                target=db.transact, args=(transfer, "a", "b", 1), kwargs={"retries": 500}
            )
            for _ in range(10)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert db.store(Balance).get_many(["a", "b"]) == [Balance("a", 0), Balance("b", 10)]

        with pytest.raises(netabase.TransactionConflict), db.transaction() as tx:
            tx.store(Balance).get("a")
            db.store(Balance).insert(Balance("a", 99))
            tx.store(Balance).insert(Balance("a", 1))
        assert db.store(Balance).get("a") == Balance("a", 99)


def test_blocking_transactions_of_two_databases_may_nest() -> None:
    with (
        netabase.connect_sync("memory://", models=TX_MODELS) as first,
        netabase.connect_sync("memory://", models=TX_MODELS) as second,
    ):
        with first.transaction() as a:
            a.store(Balance).insert(Balance("a", 1))
            with second.transaction() as b:
                b.store(Balance).insert(Balance("b", 2))
            with pytest.raises(netabase.TransactionError, match="inside a transaction"):
                first.transaction().__enter__()
        assert first.store(Balance).get("a") == Balance("a", 1)
        assert second.store(Balance).get("b") == Balance("b", 2)
        with first.transaction() as again:  # the refused one left nothing behind
            assert again.store(Balance).get("a") == Balance("a", 1)
