"""netabase from asyncio, anyio and synchronous code, through each real entry point."""

from __future__ import annotations

import asyncio
import statistics
import threading
from pathlib import Path

import anyio
import pytest
import trio

import netabase
from netabase.backends.memory import MemoryBackend

from .link_models import LINK_MODELS, Client, Purchase
from .test_enforced_view import MODELS, Folder, Note, Space

BRIDGES = ["guest", "thread"]


def netabase_threads() -> list[str]:
    """Threads netabase itself starts (trio's idle worker cache is not ours to join)."""
    return [t.name for t in threading.enumerate() if t.name.startswith(("netabase", "lmdb"))]


# -- sync ------------------------------------------------------------------------------------


def test_sync_api_does_everything_without_await(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'db'}"
    with netabase.connect_sync(url, models=LINK_MODELS) as db:
        clients, purchases = db.store(Client), db.store(Purchase)
        clients.insert_many(Client(f"c{i}", f"name {i}") for i in range(300))
        purchases.insert(Purchase(1, "c7"))
        assert clients.get("c7") == Client("c7", "name 7")
        assert clients.get("nope") is None
        assert clients.get_many(["c1", "x"]) == [Client("c1", "name 1"), None]
        assert clients.contains("c2") and clients.count() == 300
        assert [c.id for c in clients.scan(prefix="c29")] == ["c29"] + [
            f"c29{i}" for i in range(10)
        ]
        assert len(list(clients.scan(page_size=7))) == 300
        loaded = purchases.get(1, load=["client"])
        assert loaded is not None and loaded["client"] == Client("c7", "name 7")
        with pytest.raises(netabase.LinkViolation, match="c7"):
            clients.remove("c7")
        with pytest.raises(netabase.ValidationError, match=r"Purchase\.id"):
            purchases.insert(Purchase("one", "c1"))  # type: ignore[arg-type]
        with pytest.raises(netabase.UnknownModel):
            db.store(int)
        db.permissions.grant("ann", Client, "c1", "read")
        assert db.permissions.check("ann", "read", Client, "c1")
        assert list(db.permissions.list_objects("ann", "read", Client)) == ["c1"]
        assert netabase_threads()
    assert netabase_threads() == []
    with netabase.connect_sync(url, models=LINK_MODELS) as db:
        assert db.store(Client).count() == 300  # durable across connections


def test_sync_open_errors_are_netabase_errors_and_leave_no_thread() -> None:
    with pytest.raises(netabase.InvalidURL), netabase.connect_sync("nope://", models=[Client]):
        pass
    assert netabase_threads() == []


# -- asyncio ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bridge", BRIDGES)
def test_asyncio_tasks_share_the_runtime_and_the_loop_stays_responsive(
    bridge: netabase._asyncio.Bridge, tmp_path: Path
) -> None:
    async def main() -> list[float]:
        url = f"lmdb://{tmp_path / 'db'}"
        async with netabase.open_asyncio(url, models=LINK_MODELS, bridge=bridge) as db:
            clients, purchases = db.store(Client), db.store(Purchase)
            await clients.insert_many(Client(f"c{i}") for i in range(50))
            lags: list[float] = []
            running = True

            async def ticker() -> None:
                loop = asyncio.get_running_loop()
                while running:
                    started = loop.time()
                    await asyncio.sleep(0.002)
                    lags.append(loop.time() - started - 0.002)

            async def worker(n: int) -> None:
                for i in range(10):
                    key = n * 100 + i
                    await purchases.insert(Purchase(key, f"c{key % 50}"))
                    assert await purchases.get(key) == Purchase(key, f"c{key % 50}")
                    assert await clients.get(f"c{n % 50}") == Client(f"c{n % 50}")

            tick = asyncio.create_task(ticker())
            await asyncio.gather(*(worker(n) for n in range(200)))
            running = False
            await tick
            assert await purchases.count() == 2000
            assert [p.id async for p in purchases.scan(limit=3)] == [0, 1, 2]
            with pytest.raises(netabase.LinkViolation, match="missing"):
                await purchases.insert(Purchase(99_999, "missing"))
            with pytest.raises(netabase.UnknownModel):
                db.store(str)
            return lags

    # The loop also runs the workers' own steps (and, in guest mode, trio's), and a long test
    # process can pause for a garbage collection, so a single tick may be late. A loop blocked
    # by netabase calls is late on most ticks: 2 ms of blocking per insert gave p95 ~0.4 s here,
    # against ~0.01 s for the real thing.
    lags = asyncio.run(main())
    assert len(lags) >= 20
    p95 = statistics.quantiles(lags, n=20)[-1]
    assert p95 < 0.1, f"asyncio ticks late by {p95:.3f}s (p95)"
    assert netabase_threads() == []


@pytest.mark.parametrize("bridge", BRIDGES)
def test_cancelled_asyncio_caller_leaves_a_whole_write_or_none(
    bridge: netabase._asyncio.Bridge,
) -> None:
    async def main() -> None:
        async with netabase.open_asyncio("memory://", models=LINK_MODELS, bridge=bridge) as db:
            clients = db.store(Client)
            batch = [Client(f"b{i}") for i in range(500)]
            task = asyncio.create_task(clients.insert_many(batch))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await clients.count() in (0, 500)
            await clients.insert(Client("after"))
            assert await clients.get("after") == Client("after")

    asyncio.run(main())


@pytest.mark.parametrize("bridge", BRIDGES)
def test_a_scan_survives_callers_cancelled_mid_page(bridge: netabase._asyncio.Bridge) -> None:
    async def main() -> list[str]:
        async with netabase.open_asyncio("memory://", models=LINK_MODELS, bridge=bridge) as db:
            clients = db.store(Client)
            await clients.insert_many(Client(f"c{i:04d}") for i in range(500))
            scan = clients.scan(page_size=50)
            seen: list[str] = []
            while True:
                # A deadline shorter than one bridge crossing: most fetches time out mid-page
                # and the caller retries, as a request handler with a timeout would.
                try:
                    seen.append((await asyncio.wait_for(scan.__anext__(), 0.0002)).id)
                except TimeoutError:
                    continue
                except StopAsyncIteration:
                    return seen

    assert asyncio.run(main()) == [f"c{i:04d}" for i in range(500)]


@pytest.mark.parametrize("bridge", BRIDGES)
def test_two_databases_on_one_loop_and_closed_ones_say_so(
    bridge: netabase._asyncio.Bridge, tmp_path: Path
) -> None:
    async def main() -> None:
        lmdb_url = f"lmdb://{tmp_path / 'db'}"
        async with netabase.open_asyncio("memory://", models=LINK_MODELS, bridge=bridge) as a:
            async with netabase.open_asyncio(lmdb_url, models=LINK_MODELS, bridge=bridge) as b:
                await a.store(Client).insert(Client("in-a"))
                await b.store(Client).insert(Client("in-b"))
                assert await a.store(Client).get("in-b") is None
                assert await b.store(Client).get("in-b") == Client("in-b")
            assert await a.store(Client).count() == 1  # the first outlives the second
            closed = b.store(Client)
        with pytest.raises(netabase.Closed, match=r"cannot serve AsyncioStore\.get$"):
            await closed.get("in-b")

    asyncio.run(main())
    assert netabase_threads() == []


def test_sync_calls_after_close_and_inside_trio_are_clear_errors() -> None:
    with netabase.connect_sync("memory://", models=LINK_MODELS) as db:
        clients = db.store(Client)
    with pytest.raises(netabase.Closed, match=r"cannot serve SyncStore\.get$"):
        clients.get("c1")

    async def inside_trio() -> None:
        with (
            pytest.raises(netabase.NetabaseError, match="inside a trio run"),
            netabase.connect_sync("memory://", models=LINK_MODELS),
        ):
            pass

    trio.run(inside_trio)
    assert netabase_threads() == []


def test_asyncio_open_errors_reach_the_caller() -> None:
    async def main() -> None:
        with pytest.raises(netabase.InvalidURL):
            async with netabase.open_asyncio("lmdb://", models=[Client]):
                pass

    asyncio.run(main())
    assert netabase_threads() == []


def test_anyio_on_asyncio_uses_the_same_adapter() -> None:
    async def main() -> list[str]:
        async with netabase.open_asyncio("memory://", models=LINK_MODELS) as db:
            clients = db.store(Client)
            async with anyio.create_task_group() as group:
                for i in range(20):
                    group.start_soon(clients.insert, Client(f"a{i:02d}"))
            return [c.id async for c in clients.scan(limit=3)]

    assert anyio.run(main, backend="asyncio") == ["a00", "a01", "a02"]


# -- the enforced view and the rest of the surface, through both adapters -----------------------


def test_sync_enforced_view_and_the_rest_of_the_surface() -> None:
    with netabase.connect_sync("memory://", models=MODELS) as db:
        assert isinstance(db.backend, MemoryBackend)
        db.store(Space).insert(Space("s1"))
        db.store(Folder).insert_many([Folder("f1", "s1"), Folder("f2", "s1")])
        db.store(Note).insert_many([Note("n1", "f1", see_also="f2"), Note("n2", "f2")])
        db.permissions.grant("ann", Folder, "f1", "write")
        assert db.permissions.check_record("ann", "write", Note("n3", "f1"))
        with db.as_principal("ann") as view:
            assert view.principal == "ann"
            notes = view.store(Note).with_options(timeout=10, block=False)
            assert isinstance(notes, netabase.SyncStore) and notes.model is Note
            assert notes.contains("n1") and not notes.contains("n2")  # n2 is unreadable
            assert notes.count() == 1 and [n.id for n in notes.scan()] == ["n1"]
            loaded = notes.get("n1", load=["folder", "see_also"])
            assert loaded is not None and loaded["folder"] == Folder("f1", "s1")
            assert loaded["see_also"] is None  # f2 exists, but ann may not read it
            assert view.store(Folder).referrers("f1") == [netabase.Referrer("Note", "folder", "n1")]
            notes.insert(Note("n3", "f1"))
            with pytest.raises(netabase.PermissionDenied):
                notes.get("n2")
            with pytest.raises(netabase.PermissionDenied):
                notes.insert(Note("n4", "f2"))
        assert db.store(Note).with_options(timeout=1).count() == 3


@pytest.mark.parametrize("bridge", BRIDGES)
def test_asyncio_enforced_view_and_the_rest_of_the_surface(
    bridge: netabase._asyncio.Bridge,
) -> None:
    async def main() -> None:
        async with netabase.open_asyncio("memory://", models=MODELS, bridge=bridge) as db:
            assert isinstance(db.backend, MemoryBackend)
            await db.store(Space).insert(Space("s1"))
            await db.store(Folder).insert_many([Folder("f1", "s1"), Folder("f2", "s1")])
            await db.store(Note).insert_many([Note("n1", "f1", see_also="f2"), Note("n2", "f2")])
            await db.permissions.grant("ann", Folder, "f1", "read")
            assert not await db.permissions.check_record("ann", "write", Note("n3", "f1"))
            async with db.as_principal("ann") as view:
                notes = view.store(Note).with_options(timeout=10)
                assert isinstance(notes, netabase.AsyncioStore) and notes.model is Note
                assert await notes.contains("n1") and not await notes.contains("n2")
                assert await notes.count() == 1
                assert [n.id async for n in notes.scan(page_size=1)] == ["n1"]
                loaded = await notes.get("n1", load=["see_also"])
                assert loaded is not None and loaded["see_also"] is None
                # f2 is linked by n1 (readable) and n2 (not): only n1's link is listed
                referrers = await view.store(Folder).referrers("f2")
                assert referrers == [netabase.Referrer("Note", "see_also", "n1")]
                with pytest.raises(netabase.PermissionDenied):
                    await notes.insert(Note("n3", "f1"))
            assert len(await db.store(Folder).referrers("f2")) == 2

    asyncio.run(main())
    assert netabase_threads() == []


# -- anyio on trio -----------------------------------------------------------------------------


def test_anyio_service_on_trio_uses_netabase_natively() -> None:
    from examples.anyio_service import run_service

    summary = anyio.run(run_service, "memory://", 30, backend="trio")
    assert summary == {"orders": 30, "customers": 5, "first": 0}


def test_the_typed_usage_example_runs() -> None:
    """CI type-checks it with ``mypy --strict``; this runs it through all three entry points."""
    from examples.typed_usage import asyncio_main, main, sync_main

    trio.run(main)
    sync_main()
    asyncio.run(asyncio_main())
