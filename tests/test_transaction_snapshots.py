"""What a transaction reads: one snapshot on memory and LMDB (repeatable reads, scans too),
live reads on Redis refused at the commit; an LMDB map resize and an idle deadline end the
snapshot with a clear error, never a crash or a hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

import netabase
from netabase.testing import RedisServer

from .conftest import make_url
from .tx_models import TX_MODELS, Balance


@netabase.model(key="id")
@attrs.frozen
class Blob:
    id: str
    body: str = ""


MODELS = [*TX_MODELS, Blob]


@pytest.fixture(params=["memory", "lmdb"])
def snapshot_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A backend with snapshots."""
    return make_url(str(request.param), tmp_path, None)


@pytest.fixture
async def snap_db(snapshot_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(snapshot_url, models=MODELS) as database:
        yield database


async def _fund(db: netabase.Database, **balances: int) -> None:
    await db.store(Balance).insert_many(Balance(k, v) for k, v in balances.items())


async def _meanwhile(db: netabase.Database) -> None:
    """Another writer changes a, b and c, and adds d, outside the transaction."""
    await db.store(Balance).insert_many([Balance("a", 10), Balance("b", 20), Balance("d", 4)])
    await db.store(Balance).remove("c")


async def test_reads_after_the_first_come_from_its_snapshot(snap_db: netabase.Database) -> None:
    db = snap_db
    await _fund(db, a=1, b=2, c=3)
    async with db.transaction() as tx:
        accounts = tx.store(Balance)
        assert await accounts.get("a") == Balance("a", 1)  # the snapshot is taken here
        await _meanwhile(db)
        assert await db.store(Balance).get("b") == Balance("b", 20)  # outside: the new state
        assert await accounts.get("a") == Balance("a", 1)
        assert await accounts.get_many(["b", "c", "d"]) == [Balance("b", 2), Balance("c", 3), None]
        assert [r async for r in accounts.scan()] == [
            Balance("a", 1),
            Balance("b", 2),
            Balance("c", 3),
        ]
        assert [r.id async for r in accounts.scan(reverse=True, limit=2)] == ["c", "b"]
        assert await accounts.count() == 3
        assert await accounts.contains("d") is False
    # Read-only on one snapshot: it committed at the snapshot's point in time.
    assert await db.store(Balance).count() == 3


async def test_a_snapshot_writer_that_read_old_values_is_refused(
    snap_db: netabase.Database,
) -> None:
    db = snap_db
    await _fund(db, a=1, b=2, c=3)
    with pytest.raises(netabase.TransactionConflict):
        async with db.transaction() as tx:
            total = sum([r.cents async for r in tx.store(Balance).scan()])
            await _meanwhile(db)
            assert sum([r.cents async for r in tx.store(Balance).scan()]) == total == 6
            await tx.store(Balance).insert(Balance("total", total))
    assert await db.store(Balance).get("total") is None


async def test_the_snapshot_holds_while_transfers_commit_during_its_reads(
    snap_db: netabase.Database,
) -> None:
    """Read-only transactions commit without validation, so each must see one point in time
    even when a transfer lands while one of its reads waits at a checkpoint."""
    db = snap_db
    await _fund(db, a=50, b=50)
    done = trio.Event()
    totals: list[int] = []

    async def transfers() -> None:
        for i in range(150):
            async with db.transaction() as tx:
                accounts = tx.store(Balance)
                await accounts.update("a", lambda r: attrs.evolve(r, cents=r.cents - 1))
                await accounts.update("b", lambda r: attrs.evolve(r, cents=r.cents + 1))
            for _ in range(i % 3):
                await trio.lowlevel.checkpoint()
        done.set()

    async def totals_read() -> None:
        pause = 0
        while not done.is_set():
            async with db.transaction() as tx:
                accounts = tx.store(Balance)
                await accounts.contains("nobody")  # the snapshot, before any Balance write
                for _ in range(pause % 5):
                    await trio.lowlevel.checkpoint()
                a = await accounts.get("a")
                b = await accounts.get("b")
                assert a is not None and b is not None
                totals.append(a.cents + b.cents)
            pause += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(transfers)
        nursery.start_soon(totals_read)
    assert totals and set(totals) == {100}
    assert await db.store(Balance).get_many(["a", "b"]) == [Balance("a", -100), Balance("b", 200)]


async def test_redis_reads_live_and_refuses_the_commit(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    url = make_url("redis", tmp_path, redis_server)
    async with netabase.open(url, models=MODELS) as db:
        await _fund(db, a=1, b=2, c=3)
        with pytest.raises(netabase.TransactionConflict):
            async with db.transaction() as tx:  # read-only, still validated
                assert await tx.store(Balance).get("a") == Balance("a", 1)
                await _meanwhile(db)
                assert await tx.store(Balance).get("b") == Balance("b", 20)  # live
                assert [r.id async for r in tx.store(Balance).scan()] == ["a", "b", "d"]
        with pytest.raises(netabase.TransactionConflict):
            async with db.transaction() as tx:
                assert await tx.store(Balance).count() == 3
                await db.store(Balance).insert(Balance("e", 5))
                await tx.store(Balance).insert(Balance("count", 3))
        assert await db.store(Balance).get("count") is None


async def test_an_lmdb_map_resize_ends_the_snapshot_with_a_conflict(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'db'}?map_size=65536"
    async with netabase.open(url, models=MODELS) as db:
        await _fund(db, a=1, b=2)

        async def read_both(tx: netabase.Transaction, grow: bool) -> int:
            a = await tx.store(Balance).get("a")
            if grow:  # another writer fills the map meanwhile: LMDB must resize
                for i in range(4):
                    await db.store(Blob).insert(Blob(f"big{i}", "x" * (1 << 18)))
            b = await tx.store(Balance).get("b")
            assert a is not None and b is not None
            await tx.store(Balance).insert(Balance("sum", a.cents + b.cents))
            return a.cents + b.cents

        resizes = db.backend.map_resizes  # type: ignore[attr-defined]
        with trio.fail_after(30), pytest.raises(netabase.TransactionConflict, match="snapshot"):
            async with db.transaction() as tx:
                await read_both(tx, True)
        assert db.backend.map_resizes > resizes  # type: ignore[attr-defined]
        assert await db.store(Balance).get("sum") is None
        assert len(db._runtime.leases) == 0
        with trio.fail_after(30):
            assert await db.transact(read_both, False) == 3
        assert await db.store(Balance).get("sum") == Balance("sum", 3)
        assert await db.store(Blob).count() == 4
        assert db.stats().actors["Blob"].restarts == 0


@pytest.mark.parametrize("idle", [1.0, 1.5])
async def test_an_idle_transaction_loses_its_snapshot_then_times_out(
    snapshot_url: str, mock_clock: trio.testing.MockClock, idle: float
) -> None:
    async with netabase.open(snapshot_url, models=MODELS, transaction_timeout=1.0) as db:
        await _fund(db, a=1)
        leases = db._runtime.leases
        with pytest.raises(netabase.TransactionTimeout):
            async with db.transaction() as tx:
                assert await tx.store(Balance).get("a") == Balance("a", 1)
                assert len(leases) == 1
                mock_clock.jump(idle)  # idle up to (or past) the deadline
                await trio.testing.wait_all_tasks_blocked()
                assert len(leases) == 0  # released by the watcher, not by the transaction
                await tx.store(Balance).get("a")
        assert len(leases) == 0
        async with db.transaction() as tx:  # a new one works
            await tx.store(Balance).insert(Balance("a", 2))
        assert await db.store(Balance).get("a") == Balance("a", 2)


async def test_each_idle_snapshot_is_released_at_its_own_deadline(
    snapshot_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """A transaction entered first but read last has the earlier deadline: its snapshot must
    not wait for the other's."""
    async with netabase.open(snapshot_url, models=MODELS, transaction_timeout=1.0) as db:
        await _fund(db, a=1)
        leases = db._runtime.leases
        entered, read, finish = trio.Event(), [trio.Event(), trio.Event()], trio.Event()
        outcomes: list[str] = []

        async def idle(index: int, go: trio.Event | None) -> None:
            try:
                async with db.transaction() as tx:
                    entered.set()
                    if go is not None:
                        await go.wait()
                    await tx.store(Balance).get("a")
                    read[index].set()
                    await finish.wait()
                    await tx.store(Balance).get("a")
            except netabase.TransactionTimeout:
                outcomes.append("timeout")

        async with trio.open_nursery() as nursery:
            first_reads = trio.Event()
            nursery.start_soon(idle, 0, first_reads)  # deadline 1.0
            await entered.wait()
            mock_clock.jump(0.5)
            nursery.start_soon(idle, 1, None)  # deadline 1.5, reads first
            await read[1].wait()
            first_reads.set()
            await read[0].wait()
            assert len(leases) == 2
            mock_clock.jump(0.6)  # past the first deadline only
            await trio.testing.wait_all_tasks_blocked()
            assert len(leases) == 1
            mock_clock.jump(0.5)
            await trio.testing.wait_all_tasks_blocked()
            assert len(leases) == 0
            finish.set()
        assert outcomes == ["timeout", "timeout"]
