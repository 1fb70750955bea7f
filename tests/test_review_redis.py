"""Review attacks on Redis versions as clock stamps, each against a private redis-server.

A version must stand for one state only, whatever the stored counter: one planted beyond the
exact range of Lua's doubles (2^53) must still be reported exactly, or a cache in another
runtime takes the version of a later write for the one it holds.
"""

from __future__ import annotations

import netabase
from netabase.backends import Put, WriteBatch, open_backend
from netabase.backends.redis import RedisBackend
from netabase.testing import RedisServer

from .models import Note

BEYOND_DOUBLES = 2**53 + 1


async def _plant(backend: RedisBackend, space: str, version: int) -> None:
    await backend._client.command("HSET", backend.prefix + b"versions", space, str(version))


async def test_versions_beyond_2_53_are_reported_exactly(redis_server: RedisServer) -> None:
    """apply reports the counter the server stored, and after > before, above 2^53 too."""
    redis_server.start()
    backend = open_backend(f"{redis_server.url}?name=exact")
    assert isinstance(backend, RedisBackend)
    await backend.start(["s"])
    try:
        await _plant(backend, "s", BEYOND_DOUBLES)
        for i in range(4):
            result = await backend.apply([WriteBatch((Put("s", b"k", b"%d" % i),))])
            before, after = result.versions["s"]
            assert after > before
            assert after == await backend.version("s")
    finally:
        await backend.aclose()


async def test_a_cache_never_takes_a_later_write_for_its_own_beyond_2_53(
    redis_server: RedisServer,
) -> None:
    """Before the fix a write's rounded version equalled the next writer's, and was served."""
    redis_server.start()
    url = f"{redis_server.url}?name=rounded"
    async with (
        netabase.open(url, models=[Note]) as mine,
        netabase.open(url, models=[Note]) as other,
    ):
        backend = mine.backend
        assert isinstance(backend, RedisBackend)
        await _plant(backend, mine._runtime.models["Note"].space, BEYOND_DOUBLES)
        notes = mine.store(Note)
        await notes.insert(Note(1, "first"))
        await notes.insert(Note(1, "mine, cached"))
        await other.store(Note).insert(Note(1, "the other's, acknowledged"))
        assert await notes.get(1) == Note(1, "the other's, acknowledged")
