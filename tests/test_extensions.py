"""Extension points through the public API: a custom backend, its conformance, entry points."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import netabase
from netabase.testing import check_integrity
from netabase.testing.backend_kit import BackendConformance

from .link_models import LINK_MODELS, Client, Purchase
from .perm_models import PERM_MODELS, Department, Document, Organization, Project

ROOT = Path(__file__).resolve().parent.parent


def _load_example(name: str) -> ModuleType:
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


_load_example("sqlite_backend")


class TestSqliteExampleBackend(BackendConformance):
    """The backend written from docs/backends.md passes the kit netabase ships."""

    @pytest.fixture
    def backend_url(self, tmp_path: Path) -> str:
        return f"sqlite://{tmp_path / 'kv.db'}"


async def test_the_example_backend_serves_links_and_permissions(tmp_path: Path) -> None:
    async with netabase.open(f"sqlite://{tmp_path / 'a.db'}", models=LINK_MODELS) as db:
        await db.store(Client).insert(Client("c1"))
        await db.store(Purchase).insert(Purchase(1, "c1"))
        with pytest.raises(netabase.LinkViolation):
            await db.store(Client).remove("c1")
        assert await check_integrity(db) == []
    async with netabase.open(f"sqlite://{tmp_path / 'p.db'}", models=PERM_MODELS) as db:
        await db.store(Organization).insert(Organization("acme"))
        await db.store(Department).insert(Department("eng", "acme"))
        await db.store(Project).insert(Project("rocket", "eng"))
        await db.store(Document).insert(Document("d1", "rocket"))
        await db.permissions.grant("alice", Organization, "acme", "read")
        assert await db.permissions.check("alice", "read", Document, "d1")


def test_a_backend_that_breaks_ordering_fails_the_kit_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_broken=textwrap.dedent(
            """
            import pytest
            import netabase
            from netabase.backends.memory import MemoryBackend
            from netabase.testing.backend_kit import BackendConformance

            class Unordered(MemoryBackend):
                async def scan(self, space, lo=b"", hi=None, *, limit=None, reverse=False):
                    pairs = await super().scan(space, lo, hi, limit=limit, reverse=reverse)
                    return sorted(pairs, key=lambda pair: pair[0][::-1])

            netabase.register_backend("unordered", lambda url: Unordered(url.raw))

            class TestUnordered(BackendConformance):
                durable = False

                @pytest.fixture
                def backend_url(self):
                    return "unordered://"
            """
        )
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-k", "bytewise")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*scan must return every key in bytewise order*"])


def test_backends_are_found_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "netabase_fake-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: netabase-fake\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[netabase.backends]\nviaentry = tests.gated:_factory\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    backend = netabase.backends.open_backend("viaentry://somewhere")
    assert type(backend).__name__ == "GatedBackend"


def test_a_backend_class_registers_its_scheme_and_parses_its_own_options(tmp_path: Path) -> None:
    sqlite = sys.modules["sqlite_backend"]
    backend = netabase.backends.open_backend(f"sqlite://{tmp_path / 'kv.db'}?timeout=0.5")
    assert isinstance(backend, sqlite.SqliteBackend)
    assert (backend.path, backend.timeout) == (str(tmp_path / "kv.db"), 0.5)
    with pytest.raises(netabase.InvalidURL, match="option timeout='never' is not a number"):
        netabase.backends.open_backend("sqlite://kv.db?timeout=never")
    with pytest.raises(netabase.InvalidURL, match=r"unknown option.*bogus.*known: timeout"):
        netabase.backends.open_backend("sqlite://kv.db?bogus=1")


def test_register_backend_refuses_what_cannot_build_a_backend() -> None:
    class NoURL(netabase.backends.Backend):  # inherits no from_url of its own
        pass

    with pytest.raises(TypeError, match="NoURL must define from_url"):
        netabase.register_backend("nourl", NoURL)  # type: ignore[type-abstract]
    with pytest.raises(TypeError, match="got 3"):
        netabase.register_backend("three", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be an identifier, got 3"):
        netabase.register_backend(3, NoURL)  # type: ignore[arg-type]
    with pytest.raises(netabase.InvalidURL, match="unknown scheme 'nourl'"):
        netabase.backends.open_backend("nourl://")


def test_an_entry_point_may_name_a_backend_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "netabase_fake_class-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: netabase-fake-class\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[netabase.backends]\nviaclass = tests.gated:GatedBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    backend = netabase.backends.open_backend("viaclass://")
    assert type(backend).__name__ == "GatedBackend" and backend.url == "viaclass://"
