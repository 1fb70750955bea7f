"""Transactions against aiosqlite, 64 concurrent clients, durable commits, measured in one run.

    python benchmarks/transactions.py            # full run (a minute or two)
    python benchmarks/transactions.py --quick    # smaller (under ~30 s)
    python benchmarks/transactions.py --smoke    # tiny, only checks that it runs

Transfers (2 reads + 2 writes) through ``db.transact`` on LMDB against aiosqlite's
``BEGIN IMMEDIATE ... COMMIT`` (WAL, synchronous=FULL), both as one shared connection behind
an asyncio.Lock and as a pool of connections waiting on SQLite's busy timeout; the ratio is
taken against the faster. Counter increments (a transaction's get + insert) on 1000 keys,
uniform and zipfian, against ``UPDATE ... SET n = n + 1`` + commit on one shared connection
(one commit may then cover several tasks' updates) and as its own locked transaction.
Plain durable inserts, against aiosqlite insert + commit, so that runs of this script before
and after a change can be compared (``--only insert`` runs just that section).
Retries are counted as attempts of the transaction function beyond the first.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiosqlite
import attrs
import trio
from _common import Item, make_item, ratio, scratch_dir

import netabase

CLIENTS = 64
START_BALANCE = 1_000_000
ZIPF_S = 1.2


@netabase.model(key="id")
@attrs.frozen
class Account:
    id: int
    cents: int


@netabase.model(key="id")
@attrs.frozen
class Counter:
    id: int
    n: int = 0


MODELS = [Account, Counter, Item]


class Config:
    accounts = 1000
    counters = 1000
    transfers_per_client = 100
    updates_per_client = 100
    inserts_per_client = 150
    pool = 4
    retries = 100
    repeats = 3


@attrs.define
class Run:
    """One measured run: committed operations per second and how many attempts it took."""

    rate: float
    commits: int
    attempts: int
    gave_up: int = 0
    retries: bool = True
    """False where the operation cannot conflict (plain inserts): no retry rate is shown."""

    @property
    def retry_rate(self) -> float:
        return (self.attempts - self.commits) / max(1, self.commits)


def median_run(runs: list[Run]) -> Run:
    """The run with the median rate (the middle one of an odd count)."""
    return sorted(runs, key=lambda run: run.rate)[len(runs) // 2]


# -- workloads, the same for both sides ------------------------------------------------------


def transfer_pairs(seed: int, count: int) -> list[tuple[int, int, int]]:
    """``count`` (from, to, cents) transfers between distinct random accounts."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        a, b = rng.sample(range(Config.accounts), 2)
        pairs.append((a, b, rng.randrange(1, 100)))
    return pairs


def uniform_keys(seed: int, count: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(Config.counters) for _ in range(count)]


def zipf_keys(seed: int, count: int) -> list[int]:
    """Keys drawn with weight 1/(rank+1)**ZIPF_S: key 0 is the hottest."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** ZIPF_S for rank in range(Config.counters)]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    return [
        min(bisect.bisect_left(cumulative, rng.random() * total), Config.counters - 1)
        for _ in range(count)
    ]


def top_share(pick: Callable[[int, int], list[int]], top: int) -> float:
    """The share of all updates that go to the ``top`` hottest keys."""
    keys = [key for i in range(CLIENTS) for key in pick(i, Config.updates_per_client)]
    hottest = collections.Counter(keys).most_common(top)
    return sum(count for _, count in hottest) / len(keys)


# -- netabase --------------------------------------------------------------------------------


async def run_trio_clients(client: Callable[[int], Awaitable[None]]) -> float:
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(CLIENTS):
            nursery.start_soon(client, i)
    return time.perf_counter() - started


async def netabase_transfers(url: str) -> Run:
    async with netabase.open(url, models=MODELS) as db:
        await db.store(Account).insert_many(
            Account(i, START_BALANCE) for i in range(Config.accounts)
        )
        attempts = 0

        async def transfer(tx: netabase.Transaction, a: int, b: int, cents: int) -> bool:
            nonlocal attempts
            attempts += 1
            accounts = tx.store(Account)
            source, target = await accounts.get_many([a, b])
            assert source is not None and target is not None
            if source.cents < cents:
                return False
            await accounts.insert(attrs.evolve(source, cents=source.cents - cents))
            await accounts.insert(attrs.evolve(target, cents=target.cents + cents))
            return True

        async def client(i: int) -> None:
            for a, b, cents in transfer_pairs(i, Config.transfers_per_client):
                await db.transact(transfer, a, b, cents, retries=Config.retries)

        elapsed = await run_trio_clients(client)
        commits = CLIENTS * Config.transfers_per_client
        total = sum([account.cents async for account in db.store(Account).scan()])
        assert total == Config.accounts * START_BALANCE, total
    return Run(commits / elapsed, commits, attempts)


async def netabase_updates(url: str, pick: Callable[[int, int], list[int]]) -> Run:
    async with netabase.open(url, models=MODELS) as db:
        await db.store(Counter).insert_many(Counter(i) for i in range(Config.counters))
        attempts = gave_up = 0

        def increment(old: Counter | None) -> Counter:
            assert old is not None
            return attrs.evolve(old, n=old.n + 1)

        async def update(tx: netabase.Transaction, key: int) -> Counter:
            nonlocal attempts
            attempts += 1
            return await tx.store(Counter).update(key, increment)

        async def client(i: int) -> None:
            nonlocal gave_up
            for key in pick(i, Config.updates_per_client):
                try:
                    await db.transact(update, key, retries=Config.retries)
                except netabase.TransactionConflict:
                    gave_up += 1

        elapsed = await run_trio_clients(client)
        commits = CLIENTS * Config.updates_per_client - gave_up
        total = sum([counter.n async for counter in db.store(Counter).scan()])
        assert total == commits, (total, commits)
    return Run(commits / elapsed, commits, attempts, gave_up)


async def netabase_store_updates(url: str, pick: Callable[[int, int], list[int]]) -> Run:
    """The same increments through ``store.update``: one record's atomic read-modify-write
    (updates of one key in this process are served together)."""
    async with netabase.open(url, models=MODELS) as db:
        store = db.store(Counter)
        await store.insert_many(Counter(i) for i in range(Config.counters))
        calls = 0

        def increment(old: Counter | None) -> Counter:
            nonlocal calls
            calls += 1
            assert old is not None
            return attrs.evolve(old, n=old.n + 1)

        async def client(i: int) -> None:
            for key in pick(i, Config.updates_per_client):
                await store.update(key, increment)

        elapsed = await run_trio_clients(client)
        commits = CLIENTS * Config.updates_per_client
        total = sum([counter.n async for counter in store.scan()])
        assert total == commits, (total, commits)
    return Run(commits / elapsed, commits, calls)


async def netabase_inserts(url: str) -> Run:
    async with netabase.open(url, models=MODELS) as db:
        store = db.store(Item)

        async def client(i: int) -> None:
            for n in range(Config.inserts_per_client):
                await store.insert(make_item(i * Config.inserts_per_client + n))

        elapsed = await run_trio_clients(client)
    count = CLIENTS * Config.inserts_per_client
    return Run(count / elapsed, count, count, retries=False)


# -- aiosqlite -------------------------------------------------------------------------------


async def run_asyncio_clients(client: Callable[[int], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return time.perf_counter() - started


async def sqlite_connect(path: Path) -> aiosqlite.Connection:
    """A durable connection in autocommit mode: transactions are the statements' own."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute("PRAGMA busy_timeout=30000")
    return conn


async def sqlite_fund(path: Path) -> None:
    conn = await sqlite_connect(path)
    try:
        await conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, cents INTEGER)")
        await conn.execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER)")
        await conn.execute("BEGIN")
        await conn.executemany(
            "INSERT INTO accounts VALUES (?, ?)",
            [(i, START_BALANCE) for i in range(Config.accounts)],
        )
        await conn.executemany(
            "INSERT INTO counters VALUES (?, 0)", [(i,) for i in range(Config.counters)]
        )
        await conn.execute("COMMIT")
    finally:
        await conn.close()


async def sqlite_transfer(conn: aiosqlite.Connection, a: int, b: int, cents: int) -> bool:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        (source,) = await conn.execute_fetchall("SELECT cents FROM accounts WHERE id = ?", (a,))
        (target,) = await conn.execute_fetchall("SELECT cents FROM accounts WHERE id = ?", (b,))
        if source[0] < cents:
            await conn.execute("ROLLBACK")
            return False
        await conn.execute("UPDATE accounts SET cents = ? WHERE id = ?", (source[0] - cents, a))
        await conn.execute("UPDATE accounts SET cents = ? WHERE id = ?", (target[0] + cents, b))
        await conn.execute("COMMIT")
        return True
    except BaseException:
        await conn.execute("ROLLBACK")
        raise


async def sqlite_total(path: Path, table: str, column: str) -> int:
    async with aiosqlite.connect(path) as conn:
        ((total,),) = await conn.execute_fetchall(f"SELECT SUM({column}) FROM {table}")
    return int(total)


async def sqlite_transfers_locked(path: Path) -> Run:
    """64 tasks on one connection, each transaction holding an asyncio.Lock."""
    await sqlite_fund(path)
    conn = await sqlite_connect(path)
    lock = asyncio.Lock()
    try:

        async def client(i: int) -> None:
            for a, b, cents in transfer_pairs(i, Config.transfers_per_client):
                async with lock:
                    await sqlite_transfer(conn, a, b, cents)

        elapsed = await run_asyncio_clients(client)
    finally:
        await conn.close()
    assert await sqlite_total(path, "accounts", "cents") == Config.accounts * START_BALANCE
    commits = CLIENTS * Config.transfers_per_client
    return Run(commits / elapsed, commits, commits)


async def sqlite_transfers_pooled(path: Path) -> Run:
    """64 tasks sharing ``Config.pool`` connections; BEGIN IMMEDIATE waits on busy_timeout."""
    await sqlite_fund(path)
    pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
    connections = [await sqlite_connect(path) for _ in range(Config.pool)]
    for conn in connections:
        pool.put_nowait(conn)
    try:

        async def client(i: int) -> None:
            for a, b, cents in transfer_pairs(i, Config.transfers_per_client):
                conn = await pool.get()
                try:
                    await sqlite_transfer(conn, a, b, cents)
                finally:
                    pool.put_nowait(conn)

        elapsed = await run_asyncio_clients(client)
    finally:
        for conn in connections:
            await conn.close()
    assert await sqlite_total(path, "accounts", "cents") == Config.accounts * START_BALANCE
    commits = CLIENTS * Config.transfers_per_client
    return Run(commits / elapsed, commits, commits)


async def sqlite_updates(path: Path, pick: Callable[[int, int], list[int]]) -> Run:
    """``UPDATE ... SET n = n + 1`` + commit from 64 tasks on one shared connection (a commit
    may cover other tasks' updates too, as it would in an aiosqlite service)."""
    await sqlite_fund(path)
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")

        async def client(i: int) -> None:
            for key in pick(i, Config.updates_per_client):
                await conn.execute("UPDATE counters SET n = n + 1 WHERE id = ?", (key,))
                await conn.commit()

        elapsed = await run_asyncio_clients(client)
    commits = CLIENTS * Config.updates_per_client
    assert await sqlite_total(path, "counters", "n") == commits
    return Run(commits / elapsed, commits, commits)


async def sqlite_updates_locked(path: Path, pick: Callable[[int, int], list[int]]) -> Run:
    """The same, each update its own ``BEGIN IMMEDIATE ... COMMIT`` behind an asyncio.Lock."""
    await sqlite_fund(path)
    conn = await sqlite_connect(path)
    lock = asyncio.Lock()
    try:

        async def client(i: int) -> None:
            for key in pick(i, Config.updates_per_client):
                async with lock:
                    await conn.execute("BEGIN IMMEDIATE")
                    await conn.execute("UPDATE counters SET n = n + 1 WHERE id = ?", (key,))
                    await conn.execute("COMMIT")

        elapsed = await run_asyncio_clients(client)
    finally:
        await conn.close()
    commits = CLIENTS * Config.updates_per_client
    assert await sqlite_total(path, "counters", "n") == commits
    return Run(commits / elapsed, commits, commits)


async def sqlite_inserts(path: Path) -> Run:
    info = netabase.info_of(Item)
    assert info is not None
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, body BLOB)")
        await conn.commit()

        async def client(i: int) -> None:
            for n in range(Config.inserts_per_client):
                record = make_item(i * Config.inserts_per_client + n)
                await conn.execute(
                    "INSERT OR REPLACE INTO items VALUES (?, ?)",
                    (record.id, info.codec.encode(record)),
                )
                await conn.commit()

        elapsed = await run_asyncio_clients(client)
    count = CLIENTS * Config.inserts_per_client
    return Run(count / elapsed, count, count, retries=False)


# -- driver ----------------------------------------------------------------------------------


class Scratch:
    """Fresh database paths under one temporary directory."""

    def __init__(self) -> None:
        self.root = scratch_dir("netabase-txbench-")
        self.count = 0

    def path(self, name: str) -> Path:
        self.count += 1
        return self.root / f"{name}{self.count}"

    def lmdb(self) -> str:
        return f"lmdb://{self.path('nb')}"


def on_trio(fn: Callable[[], Awaitable[Run]]) -> Run:
    return median_run([trio.run(fn) for _ in range(Config.repeats)])


def on_asyncio(fn: Callable[[], Coroutine[Any, Any, Run]]) -> Run:
    return median_run([asyncio.run(fn()) for _ in range(Config.repeats)])


def print_rows(title: str, rows: list[tuple[str, Run, str]]) -> None:
    """``(name, run, note)`` rows: rate, retries per commit, note."""
    print(f"\n{title}")
    width = max(len(name) for name, _, _ in rows)
    for name, run, note in rows:
        retries = f"{run.retry_rate:6.1%} retries" if run.retries else " " * 14
        if run.gave_up:
            retries += f", {run.gave_up} gave up"
        print(f"  {name:<{width}}  {run.rate:>10,.0f} /s  {retries}  {note}")


def transfer_section(scratch: Scratch) -> None:
    locked = on_asyncio(lambda: sqlite_transfers_locked(scratch.path("sqlite")))
    pooled = on_asyncio(lambda: sqlite_transfers_pooled(scratch.path("sqlite")))
    ours = on_trio(lambda: netabase_transfers(scratch.lmdb()))
    best = max(locked.rate, pooled.rate)
    print_rows(
        f"transfers: 2 reads + 2 writes, durable, {Config.accounts} accounts",
        [
            ("aiosqlite BEGIN IMMEDIATE, one connection + lock", locked, "baseline"),
            (f"aiosqlite BEGIN IMMEDIATE, pool of {Config.pool}", pooled, "baseline"),
            ("netabase lmdb:// db.transact", ours, ratio(ours.rate, best, 2) + " vs the faster"),
        ],
    )


def update_section(scratch: Scratch) -> None:
    for label, pick in (("uniform", uniform_keys), (f"zipfian s={ZIPF_S}", zipf_keys)):
        shared = on_asyncio(lambda: sqlite_updates(scratch.path("sqlite"), pick))  # noqa: B023
        locked = on_asyncio(
            lambda: sqlite_updates_locked(scratch.path("sqlite"), pick)  # noqa: B023
        )
        ours = on_trio(lambda: netabase_updates(scratch.lmdb(), pick))  # noqa: B023
        single = on_trio(lambda: netabase_store_updates(scratch.lmdb(), pick))  # noqa: B023
        share = top_share(pick, 10)
        print_rows(
            f"counter updates, {Config.counters} keys, {label} "
            f"(top 10 keys get {share:.0%} of updates)",
            [
                ("aiosqlite UPDATE n = n + 1; commit, shared connection", shared, "baseline"),
                ("aiosqlite BEGIN IMMEDIATE; UPDATE; COMMIT + lock", locked, "baseline"),
                (
                    "netabase lmdb:// store.update",
                    single,
                    f"{ratio(single.rate, shared.rate, 1.5)} shared; "
                    f"{ratio(single.rate, locked.rate)} locked",
                ),
                (
                    "netabase lmdb:// transact(update)",
                    ours,
                    f"{ratio(ours.rate, shared.rate)} shared; "
                    f"{ratio(ours.rate, locked.rate)} locked",
                ),
            ],
        )


def insert_section(scratch: Scratch) -> None:
    theirs = on_asyncio(lambda: sqlite_inserts(scratch.path("sqlite")))
    ours = on_trio(lambda: netabase_inserts(scratch.lmdb()))
    print_rows(
        "plain durable inserts (compare with a run before the change)",
        [
            ("aiosqlite insert + commit", theirs, "baseline"),
            ("netabase lmdb:// store.insert", ours, ratio(ours.rate, theirs.rate)),
        ],
    )


SECTIONS = {"transfer": transfer_section, "update": update_section, "insert": insert_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller workload")
    size.add_argument("--smoke", action="store_true", help="tiny workload: checks it runs")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="a section")
    args = parser.parse_args()
    if args.quick:
        Config.transfers_per_client = Config.updates_per_client = 25
        Config.inserts_per_client = 40
        Config.repeats = 1
    if args.smoke:
        Config.accounts = Config.counters = 100
        Config.transfers_per_client = Config.updates_per_client = Config.inserts_per_client = 2
        Config.repeats = 1
    scratch = Scratch()
    print(
        f"{CLIENTS} clients; median of {Config.repeats} runs; "
        f"db.transact(..., retries={Config.retries})"
    )
    for name in args.only or list(SECTIONS):
        SECTIONS[name](scratch)


if __name__ == "__main__":
    main()
