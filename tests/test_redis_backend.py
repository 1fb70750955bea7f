"""What only the Redis backend has: URLs, passwords, namespaces, its connection pool."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

import netabase
from netabase.backends import open_backend
from netabase.backends.redis import RedisBackend
from netabase.backends.redis._client import Connection
from netabase.testing import RedisServer, free_port
from netabase.testing import backend_kit as kv

from .models import Note

SECRET = "s3cr3t-pw"


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private server that requires a password."""
    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), password=SECRET)
    server.start()
    yield server
    server.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://h:notaport/0", "port"),
        ("redis://h:6379/zero", "database must be a number"),
        ("redis://h/0?nmae=x", "unknown option"),
        ("redis://h/0?pool=0", "below 1"),
        ("redis://h/0?timeout=-1", "must be positive"),
        ("redis://h/0?name=a:b", "without ':'"),
    ],
)
def test_malformed_urls_are_refused_by_name(url: str, problem: str) -> None:
    with pytest.raises(netabase.InvalidURL, match=problem):
        open_backend(url)


def test_url_parts_reach_the_backend() -> None:
    backend = open_backend("redis://bob:p%40ss@10.1.2.3:7000/4?name=shop&pool=3&timeout=1.5")
    assert isinstance(backend, RedisBackend)
    assert (backend.host, backend.port, backend.db, backend.name) == ("10.1.2.3", 7000, 4, "shop")
    assert backend.timeout == 1.5
    assert "p%40ss" not in backend.url and "p@ss" not in backend.url
    assert "bob:***@" in repr(backend)


def test_password_never_appears_in_errors() -> None:
    with pytest.raises(netabase.InvalidURL) as caught:
        open_backend(f"redis://:{SECRET}@h:bad/0")
    assert SECRET not in str(caught.value)
    with pytest.raises(netabase.InvalidURL) as caught:
        open_backend("redis://u:top@half-secret@h:bad/0")  # the password holds an '@'
    assert "half-secret" not in str(caught.value) and "u:***@h:bad" in str(caught.value)


async def test_password_is_sent_and_a_wrong_one_is_a_clear_error(
    locked_server: RedisServer,
) -> None:
    async with netabase.open(f"{locked_server.url}?name=auth", models=[Note]) as db:
        await db.store(Note).insert(Note(1, "ann"))
        assert await db.store(Note).get(1) == Note(1, "ann")
    wrong = locked_server.url.replace(SECRET, "nope")
    with pytest.raises(netabase.BackendUnavailable, match="connection setup failed") as caught:
        async with netabase.open(wrong, models=[Note]):
            pass
    assert "nope" not in str(caught.value) and SECRET not in str(caught.value)


async def test_the_open_database_never_shows_the_password(locked_server: RedisServer) -> None:
    async with netabase.open(f"{locked_server.url}?name=shown", models=[Note]) as db:
        for shown in (db.url, repr(db), str(db.stats()), repr(db.backend)):
            assert SECRET not in shown and ":***@" in shown, shown


async def test_unreachable_server_fails_fast_at_open() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?connect_timeout=1"
    started = trio.current_time()
    with pytest.raises(netabase.BackendUnavailable, match="cannot connect"):
        async with netabase.open(url, models=[Note]):
            pass
    assert trio.current_time() - started < 1


async def test_namespaces_on_one_server_are_isolated(redis_server: RedisServer) -> None:
    redis_server.start()
    async with (
        netabase.open(f"{redis_server.url}?name=left", models=[Note]) as left,
        netabase.open(f"{redis_server.url}?name=right", models=[Note]) as right,
    ):
        await left.store(Note).insert(Note(1, "left"))
        assert await right.store(Note).get(1) is None
        assert await right.store(Note).count() == 0
        assert await left.store(Note).count() == 1


async def test_cancelled_request_does_not_poison_the_pool(redis_server: RedisServer) -> None:
    """A request cancelled after sending must not leave its reply for the next caller."""
    redis_server.start()
    backend = open_backend(f"{redis_server.url}?name=cancel&pool=1")
    assert isinstance(backend, RedisBackend)
    await backend.start(["s"])
    try:
        await kv.insert(backend, "s", b"a", b"first")
        await kv.insert(backend, "s", b"b", b"second")
        redis_server.pause()  # the read below is sent but cannot be answered in time
        try:
            with trio.move_on_after(0.2) as scope:
                await kv.get(backend, "s", b"a")
        finally:
            redis_server.resume()
        assert scope.cancelled_caught
        # One connection only: a reply left over from the cancelled read would answer this.
        assert await kv.get(backend, "s", b"b") == b"second"
        assert await kv.get(backend, "s", b"a") == b"first"
    finally:
        await backend.aclose()


async def test_scripts_are_reloaded_after_a_flush(redis_server: RedisServer) -> None:
    """After a restart the server forgets scripts; EVALSHA's NOSCRIPT falls back to EVAL."""
    redis_server.start()
    backend = open_backend(f"{redis_server.url}?name=flush")
    assert isinstance(backend, RedisBackend)
    await backend.start(["s"])
    try:
        raw = await Connection.open("127.0.0.1", redis_server.port, connect_timeout=2)
        await raw.execute("SCRIPT", "FLUSH")
        await raw.aclose()
        await kv.insert(backend, "s", b"k", b"v")
        assert await kv.get(backend, "s", b"k") == b"v"
        assert backend.statistics()["script_reloads"] >= 1
    finally:
        await backend.aclose()


@asynccontextmanager
async def started(server: RedisServer, *names: str) -> AsyncIterator[list[RedisBackend]]:
    """Started backends on ``server``, one per namespace ``name``, closed afterwards."""
    server.start()
    backends = [open_backend(f"{server.url}?name={name}") for name in names]
    assert all(isinstance(backend, RedisBackend) for backend in backends)
    try:
        for backend in backends:
            await backend.start(["s"])
        yield typing.cast(list[RedisBackend], backends)
    finally:
        for backend in backends:
            await backend.aclose()


async def test_clear_removes_only_its_namespace(redis_server: RedisServer) -> None:
    async with started(redis_server, "mine", "theirs") as (mine, theirs):
        await kv.insert_many(mine, "s", [(b"%d" % i, b"x") for i in range(2500)])
        await kv.insert(theirs, "s", b"keep", b"y")
        before = await mine.version("s")
        await mine.clear()
        assert await mine.count("s") == 0
        assert await mine.version("s") == 0
        assert await kv.get(theirs, "s", b"keep") == b"y"
        await kv.insert(mine, "s", b"k", b"v")
        assert await mine.version("s") > before  # restarts from the clock, not from 1


async def test_a_glob_in_the_name_clears_only_that_name(redis_server: RedisServer) -> None:
    async with started(redis_server, "*", "other-glob") as (star, other):
        await kv.insert(other, "s", b"keep", b"y")
        await star.clear()
        assert await kv.get(other, "s", b"keep") == b"y"


async def test_caches_elsewhere_see_a_clear_and_rewrite(redis_server: RedisServer) -> None:
    redis_server.start()
    url = f"{redis_server.url}?name=cleared"
    async with (
        netabase.open(url, models=[Note]) as reader,
        netabase.open(url, models=[Note]) as writer,
    ):
        await writer.store(Note).insert(Note(1, "first"))
        assert await reader.store(Note).get(1) == Note(1, "first")  # now cached in reader
        backend = writer.backend
        assert isinstance(backend, RedisBackend)
        await backend.clear()  # the version counters go too
        await writer.store(Note).insert(Note(1, "second"))
        assert await reader.store(Note).get(1) == Note(1, "second")


async def test_the_first_request_after_a_restart_reconnects(redis_server: RedisServer) -> None:
    redis_server.start()
    async with netabase.open(f"{redis_server.url}?name=restarted", models=[Note]) as db:
        notes = db.store(Note)
        await notes.insert(Note(1, "before"))
        await trio.to_thread.run_sync(redis_server.stop)  # no request while it is down
        await trio.to_thread.run_sync(redis_server.start)
        assert await notes.count() == 1  # pooled connections were closed by the old server
        await notes.insert(Note(2, "after"))
        assert await notes.get(2) == Note(2, "after")
