"""Redis dies mid-workload: requests fail fast, the runtime reconnects, nothing acked is lost.

The test owns its redis-server (AOF, ``appendfsync always``) so it can SIGKILL, restart and
freeze it. Real time is unavoidable here (a real server process); every wait is bounded.
"""

from __future__ import annotations

from pathlib import Path

import trio

import netabase
from netabase.testing import RedisServer, check_integrity

from ..link_models import LINK_MODELS, Client, Purchase

WRITERS = 8
CLIENTS = 10
FAIL_FAST = 1.0  # seconds: far below the 3 s request deadline


class Workload:
    """Writers that insert linked purchases until told to stop, recording every outcome."""

    def __init__(self, db: netabase.Database) -> None:
        self.purchases = db.store(Purchase)
        self.acked: set[int] = set()
        self.failures: list[float] = []
        self.acked_after_restart = 0
        self.restarted = False
        self.stop = False
        self._wanted: tuple[str, int, trio.Event] | None = None

    async def writer(self, n: int) -> None:
        i = 0
        while not self.stop:
            key = n * 1_000_000 + i
            i += 1
            started = trio.current_time()
            try:
                await self.purchases.insert(Purchase(key, f"c{key % CLIENTS}"))
            except netabase.BackendUnavailable:
                self.failures.append(trio.current_time() - started)
                await trio.sleep(0.005)  # a real client backs off; the server is a real process
            else:
                self.acked.add(key)
                self.acked_after_restart += self.restarted
            self._notify()

    def _notify(self) -> None:
        if self._wanted is None:
            return
        what, count, event = self._wanted
        have = {
            "acked": len(self.acked),
            "failures": len(self.failures),
            "after": self.acked_after_restart,
        }[what]
        if have >= count:
            event.set()

    async def until(self, what: str, count: int) -> None:
        event = trio.Event()
        self._wanted = (what, count, event)
        with trio.fail_after(30):
            await event.wait()
        self._wanted = None


async def every_operation_fails_fast(db: netabase.Database) -> None:
    """Each kind of request, to the stores and the permission actor, gets the same clear error."""
    clients, purchases = db.store(Client), db.store(Purchase)
    operations = {
        "get": lambda: clients.get("c1"),
        "get_many": lambda: clients.get_many(["c1", "c2"]),
        "contains": lambda: clients.contains("c1"),
        "insert": lambda: clients.insert(Client("new")),
        "insert_many": lambda: clients.insert_many([Client("n1"), Client("n2")]),
        "remove": lambda: purchases.remove(1),
        "count": lambda: clients.count(),
        "scan": lambda: _first_page(clients),
        "referrers": lambda: clients.referrers("c1"),
        "check": lambda: db.permissions.check("ann", "read", Client, "c1"),
        "grant": lambda: db.permissions.grant("ann", Client, "c1", "read"),
    }
    for name, operation in operations.items():
        started = trio.current_time()
        try:
            await operation()
            raise AssertionError(f"{name} was served while the server is down")
        except netabase.BackendUnavailable as exc:
            assert "cannot connect" in str(exc), (name, exc)
        assert trio.current_time() - started < FAIL_FAST, name


async def _first_page(store: netabase.Store[Client]) -> list[Client]:
    return [client async for client in store.scan(limit=5)]


async def test_outage_fails_fast_reconnects_and_keeps_acknowledged_writes(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    url = f"{server.url}?name=outage&timeout=1&connect_timeout=0.5"
    try:
        async with netabase.open(url, models=LINK_MODELS, request_timeout=3) as db:
            clients = db.store(Client)
            await clients.insert_many([Client(f"c{i}") for i in range(CLIENTS)])
            work = Workload(db)
            async with trio.open_nursery() as nursery:
                for n in range(WRITERS):
                    nursery.start_soon(work.writer, n)
                await work.until("acked", 300)
                server.kill()  # SIGKILL mid-workload, writes in flight
                await work.until("failures", 50)
                await every_operation_fails_fast(db)
                await trio.to_thread.run_sync(server.start)
                work.restarted = True
                await work.until("after", 300)
                work.stop = True

            assert max(work.failures) < FAIL_FAST, max(work.failures)
            assert all(s.restarts == 0 for s in db.stats().actors.values()), db.stats()
            print(
                f"redis outage: {len(work.acked)} acknowledged writes checked, "
                f"{len(work.failures)} requests failed fast (slowest {max(work.failures):.3f} s)"
            )
            purchases = db.store(Purchase)
            stored = await purchases.get_many(sorted(work.acked))
            assert all(p is not None for p in stored), "an acknowledged write was lost"
            assert await check_integrity(db) == []

            # A frozen server answers nothing: the backend timeout turns that into an error.
            server.pause()
            started = trio.current_time()
            try:
                await clients.get("c2")
                raise AssertionError("a read served by a frozen server")
            except netabase.BackendUnavailable as exc:
                assert "no reply" in str(exc)
            finally:
                server.resume()
            assert trio.current_time() - started < 2
            assert await clients.get("c2") == Client("c2")
            server.kill()  # closing with the server gone must not hang

        server.start()
        async with netabase.open(url, models=LINK_MODELS) as db:
            stored = await db.store(Purchase).get_many(sorted(work.acked))
            assert all(p is not None for p in stored), "lost after the server's SIGKILL"
            assert await check_integrity(db) == []
    finally:
        server.close()
