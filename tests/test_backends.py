"""The backend conformance kit, run against every built-in backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from netabase.testing import RedisServer
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
