"""Child process for the kill test: writes linked records to LMDB and reports each acknowledgement.

    python -m tests.faults.writer_child PATH SEED

Prints ``C key`` / ``O key customer`` once the write has returned (durable), flushing each line,
until it is killed.
"""

from __future__ import annotations

import random
import sys

import trio

import netabase

from ..link_models import LINK_MODELS, Client, Purchase


async def main(path: str, seed: int) -> None:
    async with netabase.open(f"lmdb://{path}", models=LINK_MODELS) as db:
        clients, purchases = db.store(Client), db.store(Purchase)
        existing = [c.id async for c in clients.scan()]
        top = await purchases.count()

        async def writer(n: int) -> None:
            rng = random.Random(seed * 100 + n)
            while True:
                if not existing or rng.random() < 0.3:
                    key = f"s{seed}w{n}c{rng.randrange(10**9)}"
                    await clients.insert(Client(key))
                    existing.append(key)
                    print(f"C {key}", flush=True)
                else:
                    key = (seed << 40) + (n << 32) + rng.randrange(1 << 31) + top
                    customer = rng.choice(existing)
                    await purchases.insert(Purchase(key, customer))
                    print(f"O {key} {customer}", flush=True)

        async with trio.open_nursery() as nursery:
            for n in range(8):
                nursery.start_soon(writer, n)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
