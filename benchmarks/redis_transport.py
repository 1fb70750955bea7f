"""How should trio talk to Redis? The candidates, measured in this run on a private server.

    python benchmarks/redis_transport.py            # full run
    python benchmarks/redis_transport.py --quick    # smaller

1. RESP over trio sockets, parsed by hiredis (netabase's `redis._client`): no thread at all.
1b. The same, multiplexed: every caller's command queued on one connection, a writer task
   flushing the queue in one write, a reader task handing replies back in order.
2. Sync redis-py on one long-lived worker thread that pipelines every queued request
   (netabase's `WorkerThread`, as the LMDB writer uses it).
3. Sync redis-py with one ``trio.to_thread.run_sync`` hop per request.
Baseline: redis-py's own asyncio client under asyncio, the same requests.

Each is timed sequentially (one caller: latency) and with 64 concurrent callers (throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
import outcome
import redis
import redis.asyncio
import trio

from netabase.backends._worker import WorkerThread
from netabase.backends.redis._client import Pool
from netabase.testing import RedisServer

CALLERS = 64
KEYS = 1000


class Config:
    sequential = 5_000
    per_caller = 300
    repeats = 3


Get = Callable[[bytes], Awaitable[Any]]


async def drive(get: Get) -> tuple[float, float]:
    """(µs per sequential GET, concurrent GETs per second) through ``get``."""
    started = time.perf_counter()
    for i in range(Config.sequential):
        await get(b"k%d" % (i % KEYS))
    latency = (time.perf_counter() - started) / Config.sequential * 1e6

    async def caller(n: int) -> None:
        for i in range(Config.per_caller):
            await get(b"k%d" % ((n * 7919 + i) % KEYS))

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for n in range(CALLERS):
            nursery.start_soon(caller, n)
    return latency, CALLERS * Config.per_caller / (time.perf_counter() - started)


async def trio_resp(port: int) -> tuple[float, float]:
    pool = Pool("127.0.0.1", port, size=8, connect_timeout=2)

    async def get(key: bytes) -> Any:
        async with pool.connection() as connection:
            return await connection.execute("GET", key)

    try:
        return await drive(get)
    finally:
        await pool.aclose()


class Multiplexed:
    """One connection shared by all callers: commands pipelined, replies matched in order."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[list[Any]] = collections.deque()
        self.outgoing: list[bytes] = []
        self.wake = trio.Event()

    async def request(self, *args: Any) -> Any:
        slot: list[Any] = [None, trio.Event()]
        self.waiting.append(slot)
        self.outgoing.append(hiredis.pack_command(args))
        self.wake.set()
        await slot[1].wait()
        return slot[0]

    async def write_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            data, self.outgoing = b"".join(self.outgoing), []
            await self.stream.send_all(data)

    async def read_loop(self) -> None:
        while True:
            self.reader.feed(await self.stream.receive_some(256 * 1024))
            while (reply := self.reader.gets()) is not False:
                slot = self.waiting.popleft()
                slot[0] = reply
                slot[1].set()


async def trio_multiplexed(port: int) -> tuple[float, float]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    connection = Multiplexed(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.write_loop)
        nursery.start_soon(connection.read_loop)

        async def get(key: bytes) -> Any:
            return await connection.request("GET", key)

        result = await drive(get)
        nursery.cancel_scope.cancel()
    await stream.aclose()
    return result


async def worker_thread(port: int) -> tuple[float, float]:
    client = redis.Redis(port=port)

    def pipelined(keys: Sequence[bytes]) -> list[outcome.Outcome[Any]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        return [outcome.Value(value) for value in pipe.execute()]

    worker: WorkerThread[bytes, Any] = WorkerThread("redis-py", pipelined)
    worker.start()
    try:
        return await drive(worker.submit)
    finally:
        await worker.stop()
        client.close()


async def thread_per_request(port: int) -> tuple[float, float]:
    client = redis.Redis(connection_pool=redis.BlockingConnectionPool(port=port, max_connections=8))
    limiter = trio.CapacityLimiter(8)

    async def get(key: bytes) -> Any:
        return await trio.to_thread.run_sync(client.get, key, limiter=limiter)

    try:
        return await drive(get)
    finally:
        client.close()


async def redis_py_asyncio(port: int) -> tuple[float, float]:
    pool = redis.asyncio.BlockingConnectionPool(port=port, max_connections=8)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        started = time.perf_counter()
        for i in range(Config.sequential):
            await client.get(b"k%d" % (i % KEYS))
        latency = (time.perf_counter() - started) / Config.sequential * 1e6

        async def caller(n: int) -> None:
            for i in range(Config.per_caller):
                await client.get(b"k%d" % ((n * 7919 + i) % KEYS))

        started = time.perf_counter()
        await asyncio.gather(*(caller(n) for n in range(CALLERS)))
        return latency, CALLERS * Config.per_caller / (time.perf_counter() - started)
    finally:
        await client.aclose()


def median_of(run: Callable[[], tuple[float, float]]) -> tuple[float, float]:
    results = [run() for _ in range(Config.repeats)]
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        Config.sequential, Config.per_caller, Config.repeats = 1_000, 100, 1
    with RedisServer() as server:
        redis.Redis(port=server.port).mset({b"k%d" % i: b"x" * 96 for i in range(KEYS)})
        base = median_of(lambda: asyncio.run(redis_py_asyncio(server.port)))
        rows = [
            ("redis-py asyncio client (asyncio.run)", base),
            (
                "trio sockets + hiredis (netabase)",
                median_of(lambda: trio.run(trio_resp, server.port)),
            ),
            (
                "trio sockets + hiredis, multiplexed",
                median_of(lambda: trio.run(trio_multiplexed, server.port)),
            ),
            (
                "redis-py on one worker thread, pipelined",
                median_of(lambda: trio.run(worker_thread, server.port)),
            ),
            (
                "redis-py, trio.to_thread hop per request",
                median_of(lambda: trio.run(thread_per_request, server.port)),
            ),
        ]
    print(f"GET of a 96-byte value; {CALLERS} concurrent callers; median of {Config.repeats}")
    print(f"  {'transport':<44}{'µs/seq GET':>12}{'conc GET/s':>12}{'vs asyncio':>12}")
    for name, (latency, throughput) in rows:
        print(f"  {name:<44}{latency:>12.1f}{throughput:>12,.0f}{throughput / base[1]:>11.2f}x")


if __name__ == "__main__":
    main()
