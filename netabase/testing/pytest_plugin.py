"""A pytest plugin giving each test a fresh netabase runtime.

Enable it in your ``conftest.py`` (it is opt-in, nothing activates by installing netabase)::

    pytest_plugins = ["netabase.testing.pytest_plugin"]

    @pytest.fixture
    def netabase_models():
        return [Customer, Order]

Then ask for ``netabase_db`` in a trio test (pytest-trio) or ``netabase_sync_db`` in a plain
one. Each test gets its own empty store: ``memory://`` by default, a temporary LMDB
environment with ``--netabase-backend=lmdb`` or ``@pytest.mark.netabase(backend="lmdb")``.
``netabase_url`` is the URL in use, for tests that open the database themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .._database import Database, open_database
from .._sync import SyncDatabase, connect_sync

BACKENDS = ("memory", "lmdb")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("netabase").addoption(
        "--netabase-backend",
        choices=BACKENDS,
        default="memory",
        help="backend for the netabase_db fixtures (default: memory)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", 'netabase(backend="lmdb"): run this test\'s netabase fixtures on that backend'
    )


@pytest.fixture
def netabase_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty store of this test's backend."""
    marker = request.node.get_closest_marker("netabase")
    backend = None
    if marker is not None:
        backend = marker.kwargs.get("backend", marker.args[0] if marker.args else None)
    backend = backend or request.config.getoption("--netabase-backend")
    if backend == "memory":
        return "memory://"
    if backend == "lmdb":
        return f"lmdb://{tmp_path / 'netabase'}"
    raise pytest.UsageError(f"netabase backend must be one of {BACKENDS}, got {backend!r}")


@pytest.fixture
def netabase_models() -> list[type]:
    """Override in your conftest.py with the models your tests use."""
    raise pytest.UsageError(
        "define a `netabase_models` fixture returning your model classes to use netabase_db"
    )


@pytest.fixture
async def netabase_db(netabase_url: str, netabase_models: list[type]) -> AsyncIterator[Database]:
    """An open runtime for a trio test; closed (and checked to close cleanly) afterwards."""
    async with open_database(netabase_url, models=netabase_models) as db:
        yield db


@pytest.fixture
def netabase_sync_db(netabase_url: str, netabase_models: list[type]) -> Iterator[SyncDatabase]:
    """An open runtime for a synchronous test (`netabase.connect_sync`)."""
    with connect_sync(netabase_url, models=netabase_models) as db:
        yield db
