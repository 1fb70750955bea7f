"""The backend conformance kit, run against every built-in backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import netabase
from netabase.backends import open_backend
from netabase.backends._url import parse_url, redact_url
from netabase.backends.lmdb import LmdbBackend
from netabase.backends.memory import MemoryBackend
from netabase.backends.redis import RedisBackend
from netabase.testing import RedisServer
from netabase.testing import backend_kit as kv
from netabase.testing.backend_kit import BackendConformance

from .conftest import make_url


class TestMemoryBackend(BackendConformance):
    durable = False

    @pytest.fixture
    def backend_url(self, tmp_path: Path) -> str:
        return make_url("memory", tmp_path, None)


class TestLmdbBackend(BackendConformance):
    @pytest.fixture
    def backend_url(self, tmp_path: Path) -> str:
        return make_url("lmdb", tmp_path, None)


class TestRedisBackend(BackendConformance):
    @pytest.fixture
    def backend_url(self, tmp_path: Path, redis_server: RedisServer) -> str:
        return make_url("redis", tmp_path, redis_server)


@pytest.mark.parametrize(
    ("query", "option"),
    [
        (f"map_size={2**70}", "map_size"),
        ("map_size=100", "map_size"),
        (f"max_dbs={10**30}", "max_dbs"),
        ("max_dbs=2", "max_dbs"),
        ("max_readers=0", "max_readers"),
        (f"max_readers={2**40}", "max_readers"),
        ("max_readers=1.5", "max_readers"),
    ],
)
def test_lmdb_url_options_out_of_range_are_invalid(tmp_path: Path, query: str, option: str) -> None:
    with pytest.raises(netabase.InvalidURL, match=rf"option {option}=.*(from \d+ to \d+)"):
        open_backend(f"lmdb://{tmp_path}?{query}")


@pytest.mark.parametrize("path", ["/tmp/a\x00b", "/tmp/a%00b"])
def test_lmdb_path_with_nul_is_invalid(path: str) -> None:
    with pytest.raises(netabase.InvalidURL, match="NUL"):
        open_backend(f"lmdb://{path}")


async def test_a_failed_lmdb_open_leaves_the_path_free(tmp_path: Path) -> None:
    path = tmp_path / "db"
    refused = LmdbBackend(f"lmdb://{path}", str(path), map_size=2**70)  # past py-lmdb's size_t
    with pytest.raises(netabase.BackendUnavailable, match="cannot open LMDB environment"):
        await refused.start(["a"])
    backend = open_backend(f"lmdb://{path}")
    await backend.start(["a"])  # not "already open in this process"
    try:
        await kv.insert(backend, "a", b"k", b"v")
        assert await kv.get(backend, "a", b"k") == b"v"
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    "query", [f"pool={10**30}", "pool=0", "timeout=1e400", "timeout=inf", "connect_timeout=nan"]
)
def test_redis_url_options_out_of_range_are_invalid(query: str) -> None:
    with pytest.raises(netabase.InvalidURL, match=query.partition("=")[0]):
        open_backend(f"redis://127.0.0.1:1/0?{query}")


def test_a_built_in_backend_is_imported_only_when_a_url_names_it() -> None:
    code = (
        "import sys; from netabase.backends import open_backend; open_backend('memory://');"
        " print(' '.join(sorted(m for m in sys.modules if m.startswith('netabase.backends.'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert "netabase.backends.memory" in loaded
    assert not {"netabase.backends.lmdb", "netabase.backends.redis"} & set(loaded), loaded


def test_each_built_in_backend_parses_its_own_url(tmp_path: Path) -> None:
    assert isinstance(MemoryBackend.from_url(parse_url("memory://")), MemoryBackend)
    lmdb = LmdbBackend.from_url(parse_url(f"lmdb://{tmp_path}?max_dbs=9&sync=off"))
    assert (lmdb.path, lmdb._max_dbs, lmdb._sync) == (str(tmp_path), 9, False)
    redis = RedisBackend.from_url(parse_url("redis://h:7000/2?name=x"))
    assert (redis.host, redis.port, redis.db, redis.name) == ("h", 7000, 2, "x")
    with pytest.raises(netabase.InvalidURL, match="memory:// takes no location"):
        MemoryBackend.from_url(parse_url("memory://somewhere"))
    with pytest.raises(netabase.InvalidURL, match=r"unknown option.*bogus.*known: map_size"):
        LmdbBackend.from_url(parse_url(f"lmdb://{tmp_path}?bogus=1"))


def test_unknown_schemes_list_the_built_in_ones() -> None:
    with pytest.raises(netabase.InvalidURL, match="unknown scheme 'nosuch'; known: ") as caught:
        open_backend("nosuch://x")
    assert {"lmdb://", "memory://", "redis://"} <= set(
        str(caught.value).split(": ")[-1].split(", ")
    )


def test_urls_lose_their_password_wherever_an_error_shows_them() -> None:
    assert redact_url("x://u:p@ss@h:1/0?name=a") == "x://u:***@h:1/0?name=a"
    assert redact_url("lmdb://./data") == "lmdb://./data"
    for error in (
        netabase.InvalidURL("mine://u:hush@h/x", "bad"),
        netabase.BackendUnavailable("mine://:hush@h/x", "down"),
    ):
        assert "hush" not in str(error) and ":***@h/x" in str(error)
