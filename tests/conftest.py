"""Shared fixtures: every conformance test runs on memory://, lmdb:// and redis://."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import netabase
from netabase.backends import Backend, open_backend
from netabase.backends import _url as backend_urls
from netabase.backends.memory import MemoryBackend
from netabase.testing import RedisServer

BACKENDS = ("memory", "lmdb", "redis")
_names = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server for the session; tests isolate by key namespace."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.close()


def make_url(kind: str, tmp_path: Path, redis_server: RedisServer | None) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "lmdb":
        return f"lmdb://{tmp_path / 'db'}"
    assert redis_server is not None
    redis_server.start()  # a fault test may have stopped it
    return f"{redis_server.url}?name=t{next(_names)}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``@pytest.mark.slow_on("redis", ...)``: the test's runs on those backends join the slow
    group (``pytest -m slow``, which `.ci/run` runs after the default suite)."""
    for item in items:
        mark = item.get_closest_marker("slow_on")
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("backend_kind") if callspec is not None else None
        if mark is not None and kind in mark.args:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_url(backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue("redis_server") if backend_kind == "redis" else None
    return make_url(backend_kind, tmp_path, server)


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[Backend]:
    store = open_backend(backend_url)
    await store.start(["a", "b"])
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
def reopenable(backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL whose data survives closing: LMDB and Redis as they are, memory through a scheme
    that hands out the same in-process backend each time."""
    if backend_kind != "memory":
        server: RedisServer | None = (
            request.getfixturevalue("redis_server") if backend_kind == "redis" else None
        )
        yield make_url(backend_kind, tmp_path, server)
        return
    kept = MemoryBackend()
    netabase.register_backend("keptmemory", lambda _: kept)
    try:
        yield "keptmemory://"
    finally:
        del backend_urls._FACTORIES["keptmemory"]
