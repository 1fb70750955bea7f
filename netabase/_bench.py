"""The ``netabase bench`` workload: netabase on a given URL against aiosqlite, same shape.

Imported only by that command: it needs ``aiosqlite`` (the ``bench`` extra).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite
import attrs
import trio

from ._database import open_database
from ._model import info_of, model


@model(key="id", name="BenchItem")
@attrs.frozen
class BenchItem:
    """A small record (about 100 bytes encoded)."""

    id: str
    name: str
    email: str
    age: int
    score: float


def make_item(i: int) -> BenchItem:
    return BenchItem(f"item{i:07d}", f"Name {i}", f"user{i}@example.com", 20 + i % 50, i / 7)


@attrs.frozen
class Shape:
    """How much work: ``clients`` concurrent tasks, each doing ``ops`` gets and a tenth as many
    durable single inserts, over ``records`` preloaded records."""

    clients: int
    ops: int
    records: int

    def keys(self, client: int) -> list[str]:
        rng = random.Random(client)
        return [f"item{rng.randrange(self.records):07d}" for _ in range(self.ops)]

    @property
    def inserts(self) -> int:
        return max(1, self.ops // 10)


PHASES = ("bulk load", "point gets", "durable inserts")


async def _trio_clients(shape: Shape, client: Callable[[int], Awaitable[None]]) -> float:
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(shape.clients):
            nursery.start_soon(client, i)
    return time.perf_counter() - started


async def run_netabase(url: str, shape: Shape, done: Callable[[], None]) -> dict[str, float]:
    """Operations per second of each phase on ``url``."""
    rates: dict[str, float] = {}
    async with open_database(url, models=[BenchItem]) as db:
        store = db.store(BenchItem)
        started = time.perf_counter()
        for start in range(0, shape.records, 1000):
            await store.insert_many(
                make_item(i) for i in range(start, min(start + 1000, shape.records))
            )
        rates["bulk load"] = shape.records / (time.perf_counter() - started)
        done()

        async def getter(i: int) -> None:
            for key in shape.keys(i):
                await store.get(key)

        rates["point gets"] = shape.clients * shape.ops / await _trio_clients(shape, getter)
        done()

        async def inserter(i: int) -> None:
            for n in range(shape.inserts):
                await store.insert(make_item(shape.records + i * shape.inserts + n))

        rates["durable inserts"] = (
            shape.clients * shape.inserts / await _trio_clients(shape, inserter)
        )
        done()
    return rates


async def run_aiosqlite(path: Path, shape: Shape, done: Callable[[], None]) -> dict[str, float]:
    """The same phases on one aiosqlite connection (WAL, synchronous=FULL), asyncio tasks."""
    info = info_of(BenchItem)
    assert info is not None
    encode, decode = info.codec.encode, info.codec.decode
    rates: dict[str, float] = {}
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, body BLOB)")
        started = time.perf_counter()
        rows = [(r.id, encode(r)) for r in map(make_item, range(shape.records))]
        await conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?)", rows)
        await conn.commit()
        rates["bulk load"] = shape.records / (time.perf_counter() - started)
        done()

        async def getter(i: int) -> None:
            for key in shape.keys(i):
                found = await conn.execute_fetchall("SELECT body FROM items WHERE id = ?", (key,))
                decode(next(iter(found))[0], b"")

        started = time.perf_counter()
        await asyncio.gather(*(getter(i) for i in range(shape.clients)))
        rates["point gets"] = shape.clients * shape.ops / (time.perf_counter() - started)
        done()

        async def inserter(i: int) -> None:
            for n in range(shape.inserts):
                record = make_item(shape.records + i * shape.inserts + n)
                await conn.execute(
                    "INSERT OR REPLACE INTO items VALUES (?, ?)", (record.id, encode(record))
                )
                await conn.commit()

        started = time.perf_counter()
        await asyncio.gather(*(inserter(i) for i in range(shape.clients)))
        rates["durable inserts"] = shape.clients * shape.inserts / (time.perf_counter() - started)
        done()
    return rates
