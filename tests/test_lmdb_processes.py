"""One LMDB environment shared by several processes: each adopts the map another grew, and
the reader slots of processes killed while reading are freed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import trio

import netabase
from netabase.backends import open_backend
from netabase.backends.lmdb import LmdbBackend
from netabase.testing import backend_kit as kv

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


READER = textwrap.dedent(
    """
    import sys, lmdb
    env = lmdb.open(sys.argv[1], max_dbs=8, max_readers=int(sys.argv[2]), subdir=True)
    txn = env.begin()  # holds a reader slot until the process dies
    sys.stdout.write("reading\\n")
    sys.stdout.flush()
    sys.stdin.read()
    """
)
OPENER = textwrap.dedent(
    """
    import sys, trio
    from netabase.backends import open_backend

    async def main(url, dead):
        backend = open_backend(url)
        await backend.start(["a"])
        try:
            slots = backend._env.readers().split("\\n")[1:]
            left = [line.split()[0] for line in slots if line.split()]
            _, (value,) = await backend.read("a", [b"k"])
            print(sorted(set(left) & set(dead)), value.decode())
        finally:
            await backend.aclose()

    trio.run(main, sys.argv[1], sys.argv[2:])
    """
)
MAX_READERS = 8


async def _fill_reader_table_and_kill(path: Path, count: int) -> list[str]:
    """Start ``count`` processes that each hold a read, then kill -9 them; their pids."""
    readers = [
        await trio.lowlevel.open_process(
            [sys.executable, "-c", READER, str(path), str(MAX_READERS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    try:
        for process in readers:
            assert process.stdout is not None
            assert await process.stdout.receive_some(16) == b"reading\n"
    finally:
        for process in readers:
            process.kill()
            await process.wait()
            assert process.returncode == -signal.SIGKILL
    return [str(process.pid) for process in readers]


async def test_reader_slots_of_killed_processes_are_freed(tmp_path: Path) -> None:
    path = tmp_path / "db"
    url = f"lmdb://{path}?max_readers={MAX_READERS}"
    # No idle checks here, so the checks at a full table and at open are what frees the slots.
    backend = LmdbBackend(url, str(path), max_readers=MAX_READERS, reader_check_every=None)
    await backend.start(["a"])
    try:
        await kv.insert(backend, "a", b"k", b"v")  # writes take no reader slot
        await _fill_reader_table_and_kill(path, MAX_READERS)
        # Every slot is held by a dead process: this read finds the table full, frees them.
        assert await kv.get(backend, "a", b"k") == b"v"
        # This process holds one slot now; leave one for the new process to open with.
        dead = await _fill_reader_table_and_kill(path, MAX_READERS - 2)
        opener = await trio.run_process(
            [sys.executable, "-c", OPENER, url, *dead], capture_stdout=True, cwd=ROOT
        )
        # The new process freed the dead slots when it opened, before reading anything.
        assert opener.stdout.split() == [b"[]", b"v"]
        assert await kv.get(backend, "a", b"k") == b"v"
    finally:
        await backend.aclose()


async def test_a_new_process_opens_a_table_full_of_dead_readers(tmp_path: Path) -> None:
    """py-lmdb needs a free slot to open at all: an idle process that has the environment open
    frees the dead ones, and the new process waits for that."""
    path = tmp_path / "db"
    url = f"lmdb://{path}?max_readers={MAX_READERS}"
    backend = open_backend(url)
    await backend.start(["a"])
    try:
        await kv.insert(backend, "a", b"k", b"v")
        dead = await _fill_reader_table_and_kill(path, MAX_READERS)
        opener = await trio.run_process(
            [sys.executable, "-c", OPENER, url, *dead], capture_stdout=True, cwd=ROOT
        )
        assert opener.stdout.split() == [b"[]", b"v"]
    finally:
        await backend.aclose()
