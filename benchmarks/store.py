"""The runtime against its baselines, each measured in this same run, 64 concurrent clients.

    python benchmarks/store.py            # full run (about a minute)
    python benchmarks/store.py --quick    # smaller, for a smoke check

Baselines: a bare trio request/reply loop (memory), direct LMDB reads from the same trio tasks
(no actors), aiosqlite (point select; insert + commit) and, with --redis, raw redis-py's
asyncio client against a private redis-server (AOF, appendfsync always) started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path

import aiosqlite
import lmdb
import redis
import redis.asyncio
import trio
from _common import Item, best_of, make_item, ratio, scratch_dir, table

import netabase
from netabase.testing import RedisServer

CLIENTS = 64


class Config:
    records = 20_000
    gets_per_client = 1_000
    inserts_per_client = 150
    repeats = 3


def keys_for(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [f"item{rng.randrange(Config.records):07d}" for _ in range(count)]


async def run_clients(client) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(CLIENTS):
            nursery.start_soon(client, i)
    return time.perf_counter() - started


# -- netabase ------------------------------------------------------------------------------------


async def netabase_gets(url: str, cache_size: int) -> float:
    async with netabase.open(url, models=[Item], cache_size=cache_size) as db:
        store = db.store(Item)
        await store.insert_many([make_item(i) for i in range(Config.records)])

        async def client(i: int) -> None:
            for key in keys_for(i, Config.gets_per_client):
                await store.get(key)

        await run_clients(client)  # warm-up: fills the cache like a running service
        elapsed = await run_clients(client)
    return CLIENTS * Config.gets_per_client / elapsed


async def netabase_inserts(url: str) -> float:
    async with netabase.open(url, models=[Item]) as db:
        store = db.store(Item)

        async def client(i: int) -> None:
            for n in range(Config.inserts_per_client):
                await store.insert(make_item(i * Config.inserts_per_client + n))

        elapsed = await run_clients(client)
    return CLIENTS * Config.inserts_per_client / elapsed


# -- baselines -----------------------------------------------------------------------------------


async def bare_trio_loop() -> float:
    """A server task answering from a dict over a memory channel, one Event per request."""
    data = {f"item{i:07d}": make_item(i) for i in range(Config.records)}
    send, receive = trio.open_memory_channel[tuple[str, list[object], trio.Event]](1024)

    async def server() -> None:
        async for key, box, done in receive:
            box.append(data.get(key))
            done.set()

    async def client(i: int) -> None:
        for key in keys_for(i, Config.gets_per_client):
            box: list[object] = []
            done = trio.Event()
            await send.send((key, box, done))
            await done.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        elapsed = await run_clients(client)
        nursery.cancel_scope.cancel()
    return CLIENTS * Config.gets_per_client / elapsed


async def direct_lmdb_gets(path: Path) -> float:
    """The same 64 tasks reading LMDB themselves (get + decode), yielding between reads."""
    info = netabase.info_of(Item)
    assert info is not None
    env = lmdb.open(str(path), max_dbs=4, map_size=1 << 30)
    db = env.open_db(b"items")
    with env.begin(write=True) as txn:
        for i in range(Config.records):
            key, value = info.encode_record(make_item(i))
            txn.put(key, value, db=db)
    encode_key, decode = info.encode_key, info.codec.decode

    async def client(i: int) -> None:
        for key in keys_for(i, Config.gets_per_client):
            encoded = encode_key(key)
            with env.begin(db=db) as txn:
                raw = txn.get(encoded)
            decode(raw, encoded)
            await trio.lowlevel.checkpoint()

    elapsed = await run_clients(client)
    env.close()
    return CLIENTS * Config.gets_per_client / elapsed


async def asyncio_clients(client) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return time.perf_counter() - started


async def aiosqlite_selects(path: Path) -> float:
    """aiosqlite is asyncio-only: its baselines run 64 asyncio tasks on one connection."""
    info = netabase.info_of(Item)
    assert info is not None
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, body BLOB)")
        rows = [(r.id, info.codec.encode(r)) for r in map(make_item, range(Config.records))]
        await conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?)", rows)
        await conn.commit()
        decode = info.codec.decode

        async def client(i: int) -> None:
            for key in keys_for(i, Config.gets_per_client):
                found = await conn.execute_fetchall("SELECT body FROM items WHERE id = ?", (key,))
                decode(next(iter(found))[0], b"")

        elapsed = await asyncio_clients(client)
    return CLIENTS * Config.gets_per_client / elapsed


async def aiosqlite_inserts(path: Path) -> float:
    info = netabase.info_of(Item)
    assert info is not None
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")  # durable on commit, like LMDB's sync
        await conn.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, body BLOB)")
        await conn.commit()

        async def client(i: int) -> None:
            for n in range(Config.inserts_per_client):
                record = make_item(i * Config.inserts_per_client + n)
                await conn.execute(
                    "INSERT OR REPLACE INTO items VALUES (?, ?)",
                    (record.id, info.codec.encode(record)),
                )
                await conn.commit()

        elapsed = await asyncio_clients(client)
    return CLIENTS * Config.inserts_per_client / elapsed


# -- driver --------------------------------------------------------------------------------------


def measure(fn, *args) -> float:  # type: ignore[no-untyped-def]
    return best_of(Config.repeats, lambda: trio.run(fn, *args))


def measure_asyncio(fn) -> float:  # type: ignore[no-untyped-def]
    return best_of(Config.repeats, lambda: asyncio.run(fn()))


async def redis_py_gets(url: str) -> float:
    """HGET on one hash of pre-encoded records: the floor for a netabase get on Redis."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=8)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        await client.flushdb()
        value = b"x" * 96
        for start in range(0, Config.records, 1000):
            mapping = {f"item{i:07d}": value for i in range(start, start + 1000)}
            await client.hset("bench", mapping=mapping)  # type: ignore[misc]

        async def one(i: int) -> None:
            for key in keys_for(i, Config.gets_per_client):
                await client.hget("bench", key)  # type: ignore[misc]

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(CLIENTS)))
        return CLIENTS * Config.gets_per_client / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def redis_py_sets(url: str) -> float:
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=8)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        await client.flushdb()
        value = b"x" * 96

        async def one(i: int) -> None:
            for n in range(Config.inserts_per_client):
                await client.hset("bench", f"item{i}-{n}", value)  # type: ignore[misc]

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(CLIENTS)))
        return CLIENTS * Config.inserts_per_client / (time.perf_counter() - started)
    finally:
        await client.aclose()


def redis_py_sync_gets(url: str, batch: int) -> float:
    """Sync redis-py in a plain loop: HMGET of ``batch`` keys per call (1: per-op HGET)."""
    client = redis.Redis.from_url(url)
    try:
        keys = [key for i in range(CLIENTS) for key in keys_for(i, Config.gets_per_client)]
        started = time.perf_counter()
        if batch == 1:
            for key in keys:
                client.hget("bench", key)
        else:
            for start in range(0, len(keys), batch):
                client.hmget("bench", keys[start : start + batch])
        return len(keys) / (time.perf_counter() - started)
    finally:
        client.close()


def redis_section(tmp: Path) -> None:
    with RedisServer(tmp / "redis") as server:
        names = iter(range(1_000_000))

        def url() -> str:
            return f"{server.url}?name=bench{next(names)}"

        raw_get = measure_asyncio(lambda: redis_py_gets(server.url))  # also loads "bench"
        batched = best_of(Config.repeats, lambda: redis_py_sync_gets(server.url, CLIENTS))
        per_op = best_of(Config.repeats, lambda: redis_py_sync_gets(server.url, 1))
        cached = measure(lambda: netabase_gets(url(), 100_000))
        uncached = measure(lambda: netabase_gets(url(), 0))

        def against(ours: float) -> str:
            return (
                f"{ratio(ours, batched, 0.8)} batched; {ratio(ours, per_op, 15)} per-op; "
                f"{ratio(ours, raw_get)} asyncio"
            )

        table(
            "Redis gets (private server on loopback)",
            [
                (f"redis-py sync HMGET of {CLIENTS} keys per call", batched, "baseline"),
                ("redis-py sync HGET per op", per_op, "baseline"),
                ("redis-py asyncio HGET, 64 tasks, pool of 8", raw_get, "baseline"),
                ("netabase redis:// (cache on)", cached, against(cached)),
                ("netabase redis:// (cache off)", uncached, against(uncached)),
            ],
        )
        raw_set = measure_asyncio(lambda: redis_py_sets(server.url))
        inserts = measure(lambda: netabase_inserts(url()))
        table(
            "Redis inserts (appendfsync always)",
            [
                ("redis-py asyncio HSET, pool of 8", raw_set, "baseline"),
                ("netabase redis:// (batched Lua apply)", inserts, ratio(inserts, raw_set)),
            ],
        )


def fresh(tmp: Path, name: str) -> Path:
    fresh.count = getattr(fresh, "count", 0) + 1  # type: ignore[attr-defined]
    return tmp / f"{name}{fresh.count}"  # type: ignore[attr-defined]


def versus(ours: float, direct: float, sqlite: float) -> str:
    return f"{ratio(ours, direct, 0.7)} direct; {ratio(ours, sqlite, 4)} aiosqlite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workload")
    parser.add_argument(
        "--redis", action="store_true", help="also measure Redis (starts a private redis-server)"
    )
    args = parser.parse_args()
    if args.quick:
        Config.records, Config.gets_per_client, Config.inserts_per_client = 5_000, 200, 40
        Config.repeats = 1
    tmp = scratch_dir("netabase-bench-")
    print(f"{CLIENTS} clients; {Config.records} records; median of {Config.repeats} runs")

    bare = measure(bare_trio_loop)
    memory = measure(netabase_gets, "memory://", 100_000)
    table(
        "memory gets",
        [
            ("bare trio request/reply loop", bare, "baseline"),
            ("netabase memory://", memory, ratio(memory, bare, 0.8)),
        ],
    )

    direct = measure(lambda: direct_lmdb_gets(fresh(tmp, "direct")))
    sqlite_get = measure_asyncio(lambda: aiosqlite_selects(fresh(tmp, "sqlite")))
    cached = measure(lambda: netabase_gets(f"lmdb://{fresh(tmp, 'nb')}", 100_000))
    uncached = measure(lambda: netabase_gets(f"lmdb://{fresh(tmp, 'nb')}", 0))
    table(
        "LMDB gets (get + decode)",
        [
            ("direct LMDB, no actors", direct, "baseline"),
            ("aiosqlite point select", sqlite_get, "baseline"),
            ("netabase lmdb:// (cache on)", cached, versus(cached, direct, sqlite_get)),
            ("netabase lmdb:// (cache off)", uncached, versus(uncached, direct, sqlite_get)),
        ],
    )

    sqlite_put = measure_asyncio(lambda: aiosqlite_inserts(fresh(tmp, "sqlite")))
    durable = measure(lambda: netabase_inserts(f"lmdb://{fresh(tmp, 'nb')}"))
    table(
        "durable inserts (fsync on commit)",
        [
            ("aiosqlite insert + commit (WAL, synchronous=FULL)", sqlite_put, "baseline"),
            ("netabase lmdb:// (group commit)", durable, ratio(durable, sqlite_put, 2)),
        ],
    )
    if args.redis:
        redis_section(tmp)


if __name__ == "__main__":
    main()
