"""A counter ahead of the server clock still never reissues a version after a rollback.

When the stored counter is ahead of the clock (the clock stepped back, or a failover landed on a
server whose clock runs behind), versions move by a random step the client draws; with +1 steps
a restart from an older snapshot issued the numbers the lost writes had, and a cache from before
the crash served a lost record after a newer acknowledged write. The counter is planted an hour
ahead, as a clock stepped back an hour would leave it. (Two equal steps in a row, one chance in
2^20, would make this test fail.)
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import trio

import netabase
from netabase.backends.redis import RedisBackend
from netabase.testing import RedisServer

from .models import Note

AOF_DIR = "appendonlydir"
AHEAD_US = 3600 * 1_000_000


def _rolled_back(server: RedisServer, snapshot: Path) -> None:
    server.kill()
    shutil.rmtree(server.directory / AOF_DIR)
    shutil.copytree(snapshot, server.directory / AOF_DIR)
    server.start()


async def test_a_counter_ahead_of_the_clock_never_reissues_a_version_after_rollback(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        url = f"{server.url}?name=ahead"
        async with (
            netabase.open(url, models=[Note]) as writer,
            netabase.open(url, models=[Note]) as reader,
        ):
            space = writer._runtime.models["Note"].space
            ahead = str(int(time.time() * 1_000_000) + AHEAD_US)
            backend = writer.backend
            assert isinstance(backend, RedisBackend)
            await backend._client.command("HSET", backend.prefix + b"versions", space, ahead)
            notes, cached = writer.store(Note), reader.store(Note)
            await notes.insert(Note(1, "in the snapshot"))
            shutil.copytree(server.directory / AOF_DIR, tmp_path / "snapshot")
            await notes.insert(Note(1, "lost with the rollback"))
            assert await cached.get(1) == Note(1, "lost with the rollback")
            await trio.to_thread.run_sync(_rolled_back, server, tmp_path / "snapshot")
            await notes.insert(Note(1, "written after the restart"))  # acknowledged
            assert await cached.get(1) == Note(1, "written after the restart")
    finally:
        server.close()
