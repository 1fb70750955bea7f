"""Caches against a shared Redis: never staler than the last acknowledged write.

Two runtimes on one private server. A read that another actor's cache effects overtake while it
waits for the server, and a server that comes back from an older snapshot, must not make a
cache serve a record that an acknowledged write replaced or removed.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

import netabase
from netabase.backends import Backend, BackendURL
from netabase.backends.redis import RedisBackend
from netabase.testing import RedisServer

from .link_models import LINK_MODELS, Account, Client


class PausingRedis(RedisBackend):
    """The real Redis backend, whose next read of one space can be held before it is sent."""

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
        return await super().read(space, keys)


def _pausing(url: BackendURL) -> Backend:
    plain = RedisBackend.from_url(url)
    return PausingRedis(plain.url, plain.host, plain.port, name=plain.name, timeout=plain.timeout)


netabase.register_backend("pausingredis", _pausing)


def _space(db: netabase.Database, model: type) -> str:
    return str(db._runtime.models[model.__name__].space)


async def test_a_read_overtaken_by_a_local_cascade_does_not_serve_the_removed_record(
    redis_server: RedisServer,
) -> None:
    """Hits taken before the read's await are not served once the cache changed during it."""
    redis_server.start()
    url = f"pausing{redis_server.url}?name=overtaken"
    async with (
        netabase.open(url, models=LINK_MODELS) as reader,
        netabase.open(url, models=LINK_MODELS) as other,
    ):
        await other.store(Client).insert_many([Client("c1"), Client("c2")])
        await other.store(Account).insert_many([Account(1, "c1"), Account(2, "c2")])
        accounts = reader.store(Account)
        assert await accounts.get(1) == Account(1, "c1")  # cached in the reader
        await other.store(Client).remove("c1")  # acknowledged: its cascade removed account 1
        backend = reader.backend
        assert isinstance(backend, PausingRedis)
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
