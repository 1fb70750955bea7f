"""One LMDB environment shared by two processes: each adopts the map the other grew."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import trio

import netabase

from .link_models import LINK_MODELS, Client

ROOT = Path(__file__).resolve().parent.parent
GROWER = textwrap.dedent(
    """
    import sys, trio, netabase
    from tests.link_models import LINK_MODELS, Client

    async def main(url):
        async with netabase.open(url, models=LINK_MODELS) as db:
            for i in range(8):
                await db.store(Client).insert(Client(f"big{i}", "x" * (1 << 20)))
            print(db.backend.map_resizes)

    trio.run(main, sys.argv[1])
    """
)


async def test_a_map_grown_by_another_process_is_adopted(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'db'}?map_size=65536"
    async with netabase.open(url, models=LINK_MODELS) as db:
        clients = db.store(Client)
        await clients.insert(Client("mine", "before"))
        grower = await trio.run_process(
            [sys.executable, "-c", GROWER, url],
            capture_stdout=True,
            cwd=ROOT,
        )
        assert int(grower.stdout) > 0  # the other process really grew the map
        await clients.insert(Client("mine2", "after"))  # a write, then reads, here
        assert (await clients.get("big7")) == Client("big7", "x" * (1 << 20))
        assert await clients.count() == 10
        assert db.stats().actors["Client"].restarts == 0
