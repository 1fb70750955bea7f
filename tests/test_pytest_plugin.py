"""The opt-in pytest plugin, exercised in a throwaway pytest run of a user's test file."""

from __future__ import annotations

import textwrap

import pytest

USER_TESTS = textwrap.dedent(
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


def enable_plugin(pytester: pytest.Pytester) -> None:
    """What a user does: trio mode (pytest-trio) and the plugin named in conftest.py."""
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makeconftest('pytest_plugins = ["netabase.testing.pytest_plugin"]\n')


def test_plugin_gives_each_test_a_fresh_runtime(pytester: pytest.Pytester) -> None:
    enable_plugin(pytester)
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_backend_option_and_missing_models_fixture(pytester: pytest.Pytester) -> None:
    enable_plugin(pytester)
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
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "--netabase-backend=lmdb"
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*define a `netabase_models` fixture*"])
