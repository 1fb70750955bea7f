"""The opt-in pytest plugin, exercised in throwaway pytest runs of a user's test files.

Each run has its own ``pytest.ini`` without ``trio_mode``, as in a fresh project that installed
only ``netabase[pytest]``: the plugin itself must get the async tests run.
"""

from __future__ import annotations

import textwrap

import pytest

# No trio_mode; the loop-scope line only silences pytest-asyncio's own warning about it.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

MODELS = textwrap.dedent(
    """
    import attrs
    import pytest
    import netabase

    @netabase.model(key="id")
    @attrs.frozen
    class Note:
        id: int
        text: str

    @pytest.fixture
    def netabase_models():
        return [Note]
    """
)

USER_TESTS = textwrap.dedent(
    """
    from conftest import Note
    import pytest

    @pytest.mark.parametrize("n", range(3))
    async def test_each_test_starts_empty(netabase_db, n):
        notes = netabase_db.store(Note)
        assert await notes.count() == 0
        await notes.insert(Note(n, "x"))
        assert await notes.count() == 1

    def test_sync_fixture(netabase_sync_db, netabase_url):
        netabase_sync_db.store(Note).insert(Note(1, "sync"))
        assert netabase_sync_db.store(Note).get(1) == Note(1, "sync")
        assert netabase_url == "memory://"

    @pytest.mark.netabase("lmdb")
    def test_marker_takes_the_backend_positionally(netabase_url, tmp_path):
        assert netabase_url == f"lmdb://{tmp_path / 'netabase'}"

    @pytest.mark.netabase(backend="lmdb")
    async def test_marker_selects_lmdb(netabase_db, netabase_url, tmp_path):
        assert netabase_url == f"lmdb://{tmp_path / 'netabase'}"
        await netabase_db.store(Note).insert(Note(1, "durable"))
        assert (tmp_path / "netabase" / "data.mdb").exists()
    """
)


def user_project(pytester: pytest.Pytester, **files: str) -> None:
    """A fresh project: an ini without trio_mode, the plugin named in conftest.py, the tests."""
    (pytester.path / "pytest.ini").write_text(INI)
    pytester.makeconftest('pytest_plugins = ["netabase.testing.pytest_plugin"]\n' + MODELS)
    pytester.makepyfile(**files)


def test_plugin_runs_trio_tests_without_trio_mode(pytester: pytest.Pytester) -> None:
    user_project(pytester, test_user=USER_TESTS)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    assert "trio_mode" not in (pytester.path / "pytest.ini").read_text()


def test_only_tests_using_netabase_db_become_trio_tests(pytester: pytest.Pytester) -> None:
    """Other async tests stay with their own runner: pytest-asyncio, anyio, or none."""
    user_project(
        pytester,
        test_mixed=textwrap.dedent(
            """
            import asyncio
            import pytest
            import sniffio

            @pytest.mark.asyncio
            async def test_pytest_asyncio_still_runs_its_tests():
                await asyncio.sleep(0)
                assert sniffio.current_async_library() == "asyncio"

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            @pytest.mark.anyio
            async def test_anyio_still_runs_its_tests(anyio_backend):
                assert sniffio.current_async_library() == anyio_backend

            async def test_trio(netabase_db):
                assert sniffio.current_async_library() == "trio"

            def test_trio_marker_only_where_needed(request):
                assert request.node.get_closest_marker("trio") is None
            """
        ),
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_asyncio_fixture_under_pytest_asyncio_and_anyio(pytester: pytest.Pytester) -> None:
    user_project(
        pytester,
        test_asyncio=textwrap.dedent(
            """
            import asyncio
            import pytest
            import netabase
            from conftest import Note

            @pytest.mark.asyncio
            async def test_pytest_asyncio_strict_mode(netabase_asyncio_db):
                assert isinstance(netabase_asyncio_db, netabase.AsyncioDatabase)
                notes = netabase_asyncio_db.store(Note)
                await asyncio.gather(*(notes.insert(Note(i, "a")) for i in range(5)))
                assert await notes.count() == 5

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            @pytest.mark.anyio
            async def test_anyio_on_asyncio(netabase_asyncio_db):
                await netabase_asyncio_db.store(Note).insert(Note(1, "anyio"))
                assert await netabase_asyncio_db.store(Note).get(1) == Note(1, "anyio")

            @pytest.mark.asyncio
            async def test_the_trio_fixture_in_asyncio_says_what_to_use(netabase_db):
                pass
            """
        ),
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*runs on asyncio: netabase_db is for trio tests; use netabase_asyncio_db*"]
    )


def test_anyio_on_trio_uses_netabase_db(pytester: pytest.Pytester) -> None:
    user_project(
        pytester,
        test_anyio=textwrap.dedent(
            """
            import pytest
            from conftest import Note

            @pytest.fixture
            def anyio_backend():
                return "trio"

            @pytest.mark.anyio
            async def test_anyio_on_trio(netabase_db):
                await netabase_db.store(Note).insert(Note(1, "trio"))
                assert await netabase_db.store(Note).count() == 1
            """
        ),
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_redis_backend_starts_a_private_server(pytester: pytest.Pytester) -> None:
    user_project(
        pytester,
        test_redis=textwrap.dedent(
            """
            import pytest
            from conftest import Note

            SEEN = []

            @pytest.mark.parametrize("n", range(2))
            async def test_trio_fixture_gets_a_fresh_database(netabase_db, netabase_url, n):
                assert netabase_url.startswith("redis://127.0.0.1:")
                assert ":6379/" not in netabase_url
                assert netabase_url not in SEEN
                SEEN.append(netabase_url)
                assert await netabase_db.store(Note).count() == 0
                await netabase_db.store(Note).insert(Note(n, "redis"))

            def test_sync_fixture_on_redis(netabase_sync_db, netabase_redis_server):
                assert netabase_redis_server.port != 6379
                assert netabase_sync_db.store(Note).count() == 0
                netabase_sync_db.store(Note).insert(Note(1, "sync"))

            @pytest.mark.asyncio
            async def test_asyncio_fixture_on_redis(netabase_asyncio_db):
                assert await netabase_asyncio_db.store(Note).count() == 0
            """
        ),
    )
    result = pytester.runpytest_inprocess(
        "-q", "-p", "no:cacheprovider", "--netabase-backend=redis"
    )
    result.assert_outcomes(passed=4)


def test_backend_option_and_missing_models_fixture(pytester: pytest.Pytester) -> None:
    (pytester.path / "pytest.ini").write_text(INI)
    pytester.makeconftest('pytest_plugins = ["netabase.testing.pytest_plugin"]\n')
    pytester.makepyfile(
        test_user=textwrap.dedent(
            """
            def test_url(netabase_url, tmp_path):
                assert netabase_url == f"lmdb://{tmp_path / 'netabase'}"

            async def test_without_models(netabase_db):
                pass
            """
        )
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "--netabase-backend=lmdb")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*define a `netabase_models` fixture*"])


def test_misuses_fail_with_what_to_do(pytester: pytest.Pytester) -> None:
    user_project(
        pytester,
        test_misuse=textwrap.dedent(
            """
            import pytest

            def test_sync_test_with_the_async_fixture(netabase_db):
                pass

            def test_sync_test_with_the_asyncio_fixture(netabase_asyncio_db):
                pass

            @pytest.mark.trio
            async def test_trio_test_with_the_asyncio_fixture(netabase_asyncio_db):
                pass

            async def test_unmarked_test_with_the_asyncio_fixture(netabase_asyncio_db):
                pass
            """
        ),
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=3, failed=1)
    for line in (
        "*netabase_db is for `async def` tests; use netabase_sync_db in a plain test",
        "*netabase_asyncio_db is for `async def` tests; use netabase_sync_db*",
        "*netabase_asyncio_db runs on asyncio, not trio; use netabase_db in a trio test*",
        "*no asyncio runner: mark it @pytest.mark.asyncio (pytest-asyncio) or *.anyio*",
    ):
        result.stdout.fnmatch_lines([line])
    pytester.makepyfile(test_misuse="async def test_x(netabase_db):\n    pass\n")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-p", "no:trio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs pytest-trio*pip install 'netabase?pytest?'"])


def test_asyncio_auto_mode_refuses_netabase_db_with_what_to_do(pytester: pytest.Pytester) -> None:
    """Auto mode takes netabase_db for asyncio even in a trio-marked test: the error says so."""
    user_project(
        pytester,
        test_auto=textwrap.dedent(
            """
            import pytest
            from conftest import Note

            async def test_unmarked(netabase_db):
                pass

            @pytest.mark.trio
            async def test_marked_trio(netabase_db):
                pass

            async def test_asyncio(netabase_asyncio_db):
                assert await netabase_asyncio_db.store(Note).count() == 0
            """
        ),
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        ["*test_marked_trio: pytest-asyncio's auto mode runs every async fixture on asyncio*"]
    )
    assert "runs on trio, not asyncio" not in result.stdout.str()


def test_a_failing_fixture_beside_netabase_db_fails_the_test(pytester: pytest.Pytester) -> None:
    """pytest-trio cancels the other fixtures mid-setup: opening the runtime must not hang."""
    user_project(
        pytester,
        test_broken=textwrap.dedent(
            """
            import pytest
            import trio

            @pytest.fixture
            async def broken():
                await trio.sleep(0)
                raise RuntimeError("boom")

            @pytest.mark.parametrize("n", range(8))
            async def test_x(netabase_db, broken, n):
                pass
            """
        ),
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-o", "timeout=20")
    result.assert_outcomes(failed=8)
    result.stdout.fnmatch_lines(["*RuntimeError*boom*"])
