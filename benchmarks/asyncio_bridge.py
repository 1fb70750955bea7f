"""asyncio callers: trio guest mode on the asyncio loop vs a dedicated trio thread.

    python benchmarks/asyncio_bridge.py            # full run
    python benchmarks/asyncio_bridge.py --quick

For memory:// and lmdb:// (temp dir): µs per sequential get, gets/s with 100 concurrent
asyncio tasks, and µs per sequential durable insert (LMDB), for both bridges, against the same
workload called natively from trio in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from _common import Item, make_item

import netabase
from netabase._asyncio import open_asyncio

TASKS = 100


class Config:
    sequential = 3_000
    per_task = 100
    inserts = 300
    repeats = 3
    records = 1_000


async def workload(
    store: Any, gather: Callable[[list[Awaitable[Any]]], Awaitable[Any]]
) -> dict[str, float]:
    keys = [make_item(i).id for i in range(Config.records)]
    started = time.perf_counter()
    for i in range(Config.sequential):
        await store.get(keys[i % Config.records])
    seq = (time.perf_counter() - started) / Config.sequential * 1e6

    async def task(n: int) -> None:
        for i in range(Config.per_task):
            await store.get(keys[(n * 31 + i) % Config.records])

    started = time.perf_counter()
    await gather([task(n) for n in range(TASKS)])
    conc = TASKS * Config.per_task / (time.perf_counter() - started)

    started = time.perf_counter()
    for i in range(Config.inserts):
        await store.insert(make_item(Config.records + i))
    ins = (time.perf_counter() - started) / Config.inserts * 1e6
    return {"seq_us": seq, "conc_per_s": conc, "insert_us": ins}


async def asyncio_gather(coros: list[Awaitable[Any]]) -> None:
    await asyncio.gather(*coros)


async def trio_gather(coros: list[Awaitable[Any]]) -> None:
    async def run(coro: Awaitable[Any]) -> None:
        await coro

    async with trio.open_nursery() as nursery:
        for coro in coros:
            nursery.start_soon(run, coro)


async def native(url: str) -> dict[str, float]:
    async with netabase.open(url, models=[Item]) as db:
        store = db.store(Item)
        await store.insert_many(make_item(i) for i in range(Config.records))
        return await workload(store, trio_gather)


async def bridged(url: str, bridge: Any) -> dict[str, float]:
    async with open_asyncio(url, models=[Item], bridge=bridge) as db:
        store = db.store(Item)
        await store.insert_many(make_item(i) for i in range(Config.records))
        return await workload(store, asyncio_gather)


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        Config.sequential, Config.per_task, Config.inserts, Config.repeats = 1000, 30, 100, 1
    tmp = Path(tempfile.mkdtemp(prefix="netabase-bridge-"))
    count = iter(range(1_000_000))
    try:
        for kind in ("memory", "lmdb"):

            def url(kind: str = kind) -> str:
                return "memory://" if kind == "memory" else f"lmdb://{tmp / str(next(count))}"

            rows = {
                "trio, native": median([trio.run(native, url()) for _ in range(Config.repeats)]),
                "asyncio, trio guest mode": median(
                    [asyncio.run(bridged(url(), "guest")) for _ in range(Config.repeats)]
                ),
                "asyncio, trio thread": median(
                    [asyncio.run(bridged(url(), "thread")) for _ in range(Config.repeats)]
                ),
            }
            base = rows["trio, native"]
            print(f"\n{kind}:// (median of {Config.repeats})")
            print(f"  {'caller':<28}{'µs/seq get':>12}{f'gets/s x{TASKS}':>16}{'µs/insert':>12}")
            for name, row in rows.items():
                share = row["conc_per_s"] / base["conc_per_s"]
                print(
                    f"  {name:<28}{row['seq_us']:>12.1f}{row['conc_per_s']:>16,.0f}"
                    f"{row['insert_us']:>12.1f}   concurrent {share:.2f}x native"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
