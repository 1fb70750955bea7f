"""A shop workload: customers, products and orders served by many concurrent clients.

    python examples/shop.py                       # LMDB in ./shop.db (the embedded default)
    python examples/shop.py memory://             # or any netabase URL
    python examples/shop.py lmdb://./shop.db --clients 64 --seconds 5

The workload itself lives in `netabase.demo` (also run by ``netabase demo``, with a progress
bar). It prints the throughput and the runtime's per-actor statistics.
"""

from __future__ import annotations

import argparse

import trio

from netabase import demo


def parse() -> demo.Settings:
    parser = argparse.ArgumentParser(description="netabase shop workload")
    parser.add_argument("url", nargs="?", default="lmdb://./shop.db")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--products", type=int, default=200)
    args = parser.parse_args()
    return demo.Settings(args.url, args.clients, args.seconds, args.customers, args.products)


if __name__ == "__main__":
    result = trio.run(demo.run, parse())
    print(result.summary())
    print(result.stats)
