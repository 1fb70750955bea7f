"""Transactions from several OS processes on one store (LMDB on one file, Redis): no increment
is lost, and random transfers keep the bank's total at every snapshot a reader takes."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import trio

import netabase
from netabase.testing import RedisServer

from .conftest import make_url
from .tx_models import TX_MODELS, Balance

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 4
INCREMENTS = 100
ACCOUNTS = 50
OPENING = 100
TRANSFERS = 100

COUNTER = textwrap.dedent(
    """
    import sys, attrs, trio, netabase
    from tests.tx_models import TX_MODELS, Balance

    async def increment(tx):
        hits = await tx.store(Balance).get("hits")
        await trio.lowlevel.checkpoint()
        await tx.store(Balance).insert(attrs.evolve(hits, cents=hits.cents + 1))

    async def main(url, count):
        async with netabase.open(url, models=TX_MODELS) as db:
            for _ in range(count):
                await db.transact(increment, retries=100_000)
        print("done")

    trio.run(main, sys.argv[1], int(sys.argv[2]))
    """
)
BANK = textwrap.dedent(
    """
    import random, sys, attrs, trio, netabase
    from tests.tx_models import TX_MODELS, Balance

    async def transfer(tx, src, dst, cents):
        accounts = tx.store(Balance)
        a, b = await accounts.get_many([src, dst])
        if a.cents < cents:
            return False
        await accounts.insert(attrs.evolve(a, cents=a.cents - cents))
        await trio.lowlevel.checkpoint()
        await accounts.insert(attrs.evolve(b, cents=b.cents + cents))
        return True

    async def main(url, seed, count, accounts):
        rng = random.Random(seed)
        made = 0
        async with netabase.open(url, models=TX_MODELS) as db:
            for _ in range(count):
                src, dst = rng.sample(range(accounts), 2)
                cents = rng.randint(1, 150)
                moved = await db.transact(
                    transfer, f"acct{src}", f"acct{dst}", cents, retries=100_000
                )
                made += moved
        print(made)

    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    """
)


@pytest.fixture(params=["lmdb", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store several processes open at once."""
    server: RedisServer | None = (
        request.getfixturevalue("redis_server") if request.param == "redis" else None
    )
    return make_url(str(request.param), tmp_path, server)


async def _children(script: str, *argvs: list[str]) -> list[bytes]:
    """Run one child process per argument list, all at once; their outputs."""
    outputs: list[bytes] = [b""] * len(argvs)

    async def child(index: int) -> None:
        done = await trio.run_process(
            [sys.executable, "-c", script, *argvs[index]], capture_stdout=True, cwd=ROOT
        )
        outputs[index] = done.stdout

    async with trio.open_nursery() as nursery:
        for index in range(len(argvs)):
            nursery.start_soon(child, index)
    return outputs


async def test_no_increment_is_lost_across_processes(shared_url: str) -> None:
    async with netabase.open(shared_url, models=TX_MODELS) as db:
        await db.store(Balance).insert(Balance("hits", 0))
        outputs = await _children(
            COUNTER, *([shared_url, str(INCREMENTS)] for _ in range(PROCESSES))
        )
        assert outputs == [b"done\n"] * PROCESSES
        async with db.transaction() as tx:
            assert await tx.store(Balance).get("hits") == Balance("hits", PROCESSES * INCREMENTS)


async def _total(tx: netabase.Transaction) -> list[int]:
    return [r.cents async for r in tx.store(Balance).scan()]


async def test_transfers_across_processes_keep_the_total(shared_url: str) -> None:
    async with netabase.open(shared_url, models=TX_MODELS) as db:
        await db.store(Balance).insert_many(Balance(f"acct{i}", OPENING) for i in range(ACCOUNTS))
        expected = ACCOUNTS * OPENING
        finished = trio.Event()
        outputs: list[bytes] = []
        totals: list[int] = []

        async def transfers() -> None:
            argvs = (
                [shared_url, str(seed), str(TRANSFERS), str(ACCOUNTS)] for seed in range(PROCESSES)
            )
            outputs.extend(await _children(BANK, *argvs))
            finished.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(transfers)
            while not finished.is_set() or len(totals) < 3:
                balances = await db.transact(_total, retries=100_000)
                assert len(balances) == ACCOUNTS
                totals.append(sum(balances))
                await trio.lowlevel.checkpoint()
        assert set(totals) == {expected}
        made = [int(out) for out in outputs]
        assert len(made) == PROCESSES and sum(made) > 0
        balances = await db.transact(_total)
        assert sum(balances) == expected
        assert min(balances) >= 0
        assert balances != [OPENING] * ACCOUNTS
