"""A pytest plugin giving each test a fresh netabase runtime.

Install ``netabase[pytest]`` (pytest and pytest-trio) and enable the plugin in your root
``conftest.py`` (it is opt-in: nothing activates by installing netabase)::

    pytest_plugins = ["netabase.testing.pytest_plugin"]

    @pytest.fixture
    def netabase_models():
        return [Customer, Order]

Fixtures: ``netabase_db`` (a `Database`, in an ``async def`` test run by trio),
``netabase_asyncio_db`` (an `AsyncioDatabase`, in a pytest-asyncio or anyio test on asyncio),
``netabase_sync_db`` (a `SyncDatabase`, in a plain test) and ``netabase_url``. No ``trio_mode``
is needed: the plugin marks ``pytest.mark.trio`` on the async tests that request
``netabase_db`` and on no others, so the rest of the suite stays with whatever runs it.
Each test gets its own empty store: ``memory://`` by default, a temporary LMDB environment or a
fresh namespace on a private ``redis-server`` with ``--netabase-backend=lmdb|redis`` or
``@pytest.mark.netabase(backend="lmdb")``.
"""

from __future__ import annotations

import inspect
import types
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sniffio

from .._asyncio import AsyncioDatabase, open_asyncio
from .._database import Database, open_database
from .._sync import SyncDatabase, connect_sync
from ._redis_server import RedisServer

BACKENDS = ("memory", "lmdb", "redis")
_TRIO_FIXTURE = "netabase_db"
_ASYNCIO_FIXTURE = "netabase_asyncio_db"
_OTHER_RUNNERS = ("trio", "anyio", "asyncio")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("netabase").addoption(
        "--netabase-backend",
        choices=BACKENDS,
        default="memory",
        help="backend for the netabase_db fixtures (default: memory; redis starts a private "
        "redis-server for the session)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        'netabase(backend="lmdb"): run this test\'s netabase fixtures on that backend '
        "(memory, lmdb or redis)",
    )


def _is_async_test(item: pytest.Function) -> bool:
    hypothesis = getattr(item.obj, "hypothesis", None)
    return inspect.iscoroutinefunction(getattr(hypothesis, "inner_test", item.obj))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Hand the async tests that use ``netabase_db`` to pytest-trio, unless a runner is chosen."""
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and _TRIO_FIXTURE in item.fixturenames
            and _is_async_test(item)
            and not any(item.get_closest_marker(name) for name in _OTHER_RUNNERS)
            and config.pluginmanager.hasplugin("trio")
        ):
            item.add_marker(pytest.mark.trio)


def _runners(item: pytest.Function) -> set[str]:
    return {name for name in _OTHER_RUNNERS if item.get_closest_marker(name)}


def _asyncio_auto_mode(config: pytest.Config) -> bool:
    """Whether pytest-asyncio is active in auto mode (read as pytest-asyncio itself reads it)."""
    if not config.pluginmanager.hasplugin("asyncio"):
        return False
    mode = config.getoption("asyncio_mode", None) or config.getini("asyncio_mode")
    return str(mode) == "auto"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a misuse of the async fixtures with what to do instead of an obscure error."""
    if not isinstance(item, pytest.Function):
        return
    wanted = [name for name in (_TRIO_FIXTURE, _ASYNCIO_FIXTURE) if name in item.fixturenames]
    if wanted and not _is_async_test(item):
        pytest.fail(
            f"{item.name} is not async: {wanted[0]} is for `async def` tests; "
            "use netabase_sync_db in a plain test",
            pytrace=False,
        )
    runners = _runners(item)
    if _TRIO_FIXTURE in wanted and _asyncio_auto_mode(item.config):
        pytest.fail(
            f"{item.name}: pytest-asyncio's auto mode runs every async fixture on asyncio, "
            f"netabase_db included; use {_ASYNCIO_FIXTURE} in an asyncio test, or "
            "asyncio_mode = strict for trio tests",
            pytrace=False,
        )
    if _TRIO_FIXTURE in wanted and runners == {"asyncio"}:
        pytest.fail(
            f"{item.name} runs on asyncio: netabase_db is for trio tests; use "
            f"{_ASYNCIO_FIXTURE} in an asyncio test",
            pytrace=False,
        )
    if wanted == [_ASYNCIO_FIXTURE] and not runners:
        pytest.fail(
            f"{item.name} has no asyncio runner: mark it @pytest.mark.asyncio (pytest-asyncio) "
            "or @pytest.mark.anyio to use netabase_asyncio_db",
            pytrace=False,
        )
    if _TRIO_FIXTURE in wanted and not runners and not item.config.pluginmanager.hasplugin("trio"):
        pytest.fail(
            "netabase_db needs pytest-trio, which is not installed or is disabled: "
            "pip install 'netabase[pytest]'",
            pytrace=False,
        )


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None]:
    """Keep pytest-asyncio's hands off ``netabase_asyncio_db`` outside its own tests.

    The fixture is declared with ``pytest_asyncio.fixture`` (when installed) so that strict
    mode runs it in ``@pytest.mark.asyncio`` tests; anyio and other tests get an undeclared copy
    for this request, so that their own runner sets it up on their loop.
    """
    original = fixturedef.func
    if (
        fixturedef.argname == _ASYNCIO_FIXTURE
        and getattr(original, "_force_asyncio_fixture", False)
        and not request.node.get_closest_marker("asyncio")
    ):
        fixturedef.func = types.FunctionType(
            original.__code__,
            original.__globals__,
            original.__name__,
            original.__defaults__,
            original.__closure__,
        )
    try:
        yield
    finally:
        fixturedef.func = original


def _backend(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("netabase")
    backend = None
    if marker is not None:
        backend = marker.kwargs.get("backend", marker.args[0] if marker.args else None)
    backend = backend or request.config.getoption("--netabase-backend")
    if backend not in BACKENDS:
        raise pytest.UsageError(f"netabase backend must be one of {BACKENDS}, got {backend!r}")
    return str(backend)


@pytest.fixture(scope="session")
def netabase_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's private redis-server on a free loopback port, started on first use."""
    server = RedisServer(tmp_path_factory.mktemp("netabase-redis"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def netabase_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty store of this test's backend."""
    backend = _backend(request)
    if backend == "memory":
        return "memory://"
    if backend == "lmdb":
        return f"lmdb://{tmp_path / 'netabase'}"
    server: RedisServer = request.getfixturevalue("netabase_redis_server")
    return f"{server.url}?name=test-{uuid.uuid4().hex}"


@pytest.fixture
def netabase_models() -> list[type]:
    """Override in your conftest.py with the models your tests use."""
    raise pytest.UsageError(
        "define a `netabase_models` fixture returning your model classes to use netabase_db"
    )


def _require_library(expected: str, fixture: str, instead: str) -> None:
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    if library != expected:
        raise pytest.UsageError(f"{fixture} runs on {expected}, not {library}; use {instead}")


@pytest.fixture
async def netabase_db(netabase_url: str, netabase_models: list[type]) -> AsyncIterator[Database]:
    """An open runtime for an async trio test; closed (and checked to close cleanly) afterwards."""
    _require_library("trio", _TRIO_FIXTURE, f"{_ASYNCIO_FIXTURE} in an asyncio test")
    async with open_database(netabase_url, models=netabase_models) as db:
        yield db


async def _asyncio_db(
    netabase_url: str, netabase_models: list[type]
) -> AsyncIterator[AsyncioDatabase]:
    """An open runtime (`netabase.open_asyncio`) for a pytest-asyncio or anyio asyncio test."""
    _require_library("asyncio", _ASYNCIO_FIXTURE, f"{_TRIO_FIXTURE} in a trio test")
    async with open_asyncio(netabase_url, models=netabase_models) as db:
        yield db


def _declare_asyncio_fixture() -> Any:
    try:
        import pytest_asyncio
    except ImportError:
        return pytest.fixture(_asyncio_db, name=_ASYNCIO_FIXTURE)
    return pytest_asyncio.fixture(_asyncio_db, name=_ASYNCIO_FIXTURE)


netabase_asyncio_db = _declare_asyncio_fixture()


@pytest.fixture
def netabase_sync_db(netabase_url: str, netabase_models: list[type]) -> Iterator[SyncDatabase]:
    """An open runtime for a synchronous test (`netabase.connect_sync`)."""
    with connect_sync(netabase_url, models=netabase_models) as db:
        yield db
