"""Caches against a shared Redis: never staler than the last acknowledged write.

Two runtimes on one private server. A read that another actor's cache effects overtake while it
waits for the server, and a server that comes back from an older snapshot, must not make a
cache serve a record that an acknowledged write replaced or removed. The first case runs on a
shared memory store too: the fix is the cache's, not Redis's.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

import netabase
from netabase.backends import Backend, BackendURL, Put, WriteBatch, open_backend
from netabase.backends.memory import MemoryBackend
from netabase.backends.redis import RedisBackend
from netabase.testing import RedisServer
from netabase.testing import backend_kit as kv

from .link_models import LINK_MODELS, Account, Client, Product, Purchase
from .models import Note

AOF_DIR = "appendonlydir"  # where redis-server 7 keeps its append-only files


class _Pausing(Backend):
    """A backend whose next read of one space can be held before it reaches the store."""

    armed: str | None = None
    paused: trio.Event
    release: trio.Event

    def hold_next_read(self, space: str) -> None:
        self.armed = space
        self.paused = trio.Event()
        self.release = trio.Event()

    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        if space == self.armed:
            self.armed = None
            self.paused.set()
            await self.release.wait()
        return await super().read(space, keys)  # type: ignore[safe-super]


class PausingRedis(_Pausing, RedisBackend):
    """The real Redis backend underneath."""


class PausingMemory(_Pausing, MemoryBackend):
    """One memory store shared by every runtime that opens the same name."""


def _pausing_redis(url: BackendURL) -> Backend:
    plain = RedisBackend.from_url(url)
    return PausingRedis(plain.url, plain.host, plain.port, name=plain.name, timeout=plain.timeout)


_shared: dict[str, PausingMemory] = {}


def _pausing_memory(url: BackendURL) -> Backend:
    return _shared.setdefault(url.location, PausingMemory(url.raw))


netabase.register_backend("pausingredis", _pausing_redis)
netabase.register_backend("pausingmemory", _pausing_memory)


@pytest.fixture(params=["redis", "memory"])
def shared_url(request: pytest.FixtureRequest) -> str:
    """Where two runtimes share one store: a private Redis, or (inline reads) one memory store."""
    if request.param == "memory":
        name = f"overtaken-{len(_shared)}"
        return f"pausingmemory://{name}"
    server: RedisServer = request.getfixturevalue("redis_server")
    server.start()
    return f"pausing{server.url}?name=overtaken"


def _space(db: netabase.Database, model: type) -> str:
    return str(db._runtime.models[model.__name__].space)


async def test_a_read_overtaken_by_a_local_cascade_does_not_serve_the_removed_record(
    shared_url: str,
) -> None:
    """Hits taken before the read's await are not served once the cache changed during it."""
    async with (
        netabase.open(shared_url, models=LINK_MODELS) as reader,
        netabase.open(shared_url, models=LINK_MODELS) as other,
    ):
        await other.store(Client).insert_many([Client("c1"), Client("c2")])
        await other.store(Account).insert_many([Account(1, "c1"), Account(2, "c2")])
        accounts = reader.store(Account)
        assert await accounts.get(1) == Account(1, "c1")  # cached in the reader
        await other.store(Client).remove("c1")  # acknowledged: its cascade removed account 1
        backend = reader.backend
        assert isinstance(backend, _Pausing)
        backend.hold_next_read(_space(reader, Account))
        seen: list[Account | None] = []

        async def read_account() -> None:
            seen.append(await accounts.get(1))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_account)
            await backend.paused.wait()  # the hit on account 1 is taken, the read not yet sent
            # The reader's own cascade moves the Account cache to the space's newest version.
            await reader.store(Client).remove("c2")
            backend.release.set()
        assert seen == [None]
        assert await accounts.get(1) is None


def _rolled_back(server: RedisServer, snapshot: Path) -> None:
    """Crash the server and bring it back from ``snapshot`` (its persisted files at an older
    point), as a restart from an older RDB dump or a lagging replica taking over would."""
    server.kill()
    shutil.rmtree(server.directory / AOF_DIR)
    shutil.copytree(snapshot, server.directory / AOF_DIR)
    server.start()


async def test_a_server_back_from_an_older_snapshot_never_reissues_a_cached_version(
    tmp_path: Path,
) -> None:
    """A cache from before the rollback must not validate against a write made after it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        url = f"{server.url}?name=rollback"
        async with (
            netabase.open(url, models=[Note]) as writer,
            netabase.open(url, models=[Note]) as reader,
        ):
            notes, cached = writer.store(Note), reader.store(Note)
            await notes.insert(Note(1, "in the snapshot"))
            # appendfsync always: the acknowledged write is on disk, and nothing else is moving.
            shutil.copytree(server.directory / AOF_DIR, tmp_path / "snapshot")
            await notes.insert(Note(1, "lost with the rollback"))
            assert await cached.get(1) == Note(1, "lost with the rollback")  # cached in reader
            space = _space(reader, Note)
            lost_version = await reader.backend.version(space)

            await trio.to_thread.run_sync(_rolled_back, server, tmp_path / "snapshot")
            assert await writer.backend.version(space) < lost_version  # the counter went back
            assert await notes.get(1) == Note(1, "in the snapshot")
            await notes.insert(Note(1, "written after the restart"))  # acknowledged

            # Before the fix the counter reached lost_version again, so the reader's cache
            # validated and served the lost record.
            assert await cached.get(1) == Note(1, "written after the restart")
            assert await writer.backend.version(space) > lost_version
    finally:
        server.close()


async def test_versions_pass_every_number_a_rolled_back_counter_issued(
    redis_server: RedisServer,
) -> None:
    """The counter may go back with the data; the next write still moves past it."""
    redis_server.start()
    backend = open_backend(f"{redis_server.url}?name=counter")
    assert isinstance(backend, RedisBackend)
    await backend.start(["s"])
    try:
        await kv.insert(backend, "s", b"k", b"1")
        old = await backend.version("s")
        issued = [
            (await backend.apply([WriteBatch((Put("s", b"k", b"%d" % i),))])).versions["s"]
            for i in range(3)
        ]
        assert [before for before, _ in issued] == [old] + [after for _, after in issued[:-1]]
        # What a restart from the snapshot taken at ``old`` does to the counter:
        await backend._client.command("HSET", backend.prefix + b"versions", "s", old)
        result = await backend.apply([WriteBatch((Put("s", b"k", b"again"),))])
        before, after = result.versions["s"]
        assert before == old
        assert after > max(issued)[1]
    finally:
        await backend.aclose()


async def test_a_read_overtaken_by_a_local_set_null_does_not_serve_the_old_link(
    shared_url: str,
) -> None:
    """The same with set_null: the local cascade stores a rewritten record, not a removal."""
    async with (
        netabase.open(shared_url, models=LINK_MODELS) as reader,
        netabase.open(shared_url, models=LINK_MODELS) as other,
    ):
        await other.store(Client).insert(Client("c"))
        await other.store(Product).insert_many([Product("p1"), Product("p2")])
        await other.store(Purchase).insert_many(
            [Purchase(1, "c", frozenset({"p1"})), Purchase(2, "c", frozenset({"p2"}))]
        )
        purchases = reader.store(Purchase)
        assert await purchases.get(1) == Purchase(1, "c", frozenset({"p1"}))  # cached
        await other.store(Product).remove("p1")  # acknowledged: set_null rewrote purchase 1
        backend = reader.backend
        assert isinstance(backend, _Pausing)
        backend.hold_next_read(_space(reader, Purchase))
        seen: list[Purchase | None] = []

        async def read_purchase() -> None:
            seen.append(await purchases.get(1))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_purchase)
            await backend.paused.wait()
            await reader.store(Product).remove("p2")  # stores purchase 2 rewritten, locally
            backend.release.set()
        assert seen == [Purchase(1, "c", frozenset())]
        assert await purchases.get(1) == Purchase(1, "c", frozenset())
