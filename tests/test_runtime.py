"""The actor runtime: deadlines, cancellation, backpressure, supervision and shutdown."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

import netabase
from netabase.testing import InjectedFault, inject_fault

from .gated import gated
from .models import Customer, Order

MODELS = [Customer, Order]


async def test_request_timeout_then_serves_again(autojump_clock: trio.testing.MockClock) -> None:
    url, backend = gated("timeout")
    async with netabase.open(url, models=MODELS, request_timeout=1.0) as db:
        customers = db.store(Customer)
        await customers.insert(Customer("a", "A"))
        backend.close_gate(reads=True)
        start = trio.current_time()
        with pytest.raises(netabase.RequestTimeout) as info:
            await customers.get("b")
        assert trio.current_time() - start == pytest.approx(1.0)
        assert info.value.model == "Customer" and info.value.key == "b"
        backend.open_gate()
        assert await customers.get("a") == Customer("a", "A")


async def test_a_timeout_names_the_public_operation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The operation a `RequestTimeout` names is the method the caller used (it comes from the
    message class), never an internal request name."""
    url, backend = gated("operations")
    async with netabase.open(url, models=MODELS, request_timeout=1.0) as db:
        customers = db.store(Customer)
        listing = db.permissions.list_objects("ann", "read", Customer)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "get": lambda: customers.get("a"),
            "get_many": lambda: customers.get_many(["a"]),
            "insert": lambda: customers.insert(Customer("a", "A")),
            "insert_many": lambda: customers.insert_many([Customer("a", "A")]),
            "remove": lambda: customers.remove("a"),
            "count": customers.count,
            "list_objects": lambda: anext(aiter(listing)),
            "check": lambda: db.permissions.check("ann", "read", Customer, "a"),
        }
        backend.close_gate(reads=True, writes=True)
        named = {}
        for method, call in calls.items():
            with pytest.raises(netabase.RequestTimeout) as info:
                await call()
            named[method] = info.value.operation
        backend.open_gate()
    assert named == {
        "get": "get",
        "get_many": "get_many",
        "insert": "insert",
        "insert_many": "insert",
        "remove": "remove",
        "count": "count",
        "list_objects": "list_objects",
        "check": "check",
    }


async def test_cancelled_queued_write_is_not_applied() -> None:
    url, backend = gated("queued")
    async with netabase.open(url, models=MODELS) as db:
        customers = db.store(Customer)
        backend.close_gate(reads=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(customers.get, "blocker")  # the actor now waits in a read
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                scope.cancel()
                await customers.insert(Customer("x", "never"))
            backend.open_gate()
        assert await customers.get("x") is None


async def test_cancelled_committing_write_is_fully_applied() -> None:
    url, backend = gated("committing")
    async with netabase.open(url, models=MODELS) as db:
        customers = db.store(Customer)
        backend.close_gate(writes=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(customers.insert_many, [Customer("x", "X"), Customer("y", "Y")])
            await trio.testing.wait_all_tasks_blocked()
            assert backend.held == 1
            nursery.cancel_scope.cancel()
        backend.open_gate()
        got = await customers.get_many(["x", "y"])
        assert got == [Customer("x", "X"), Customer("y", "Y")]


async def test_full_mailbox_applies_backpressure_or_raises() -> None:
    url, backend = gated("backpressure")
    async with netabase.open(url, models=MODELS, mailbox_size=2) as db:
        customers = db.store(Customer)
        backend.close_gate(reads=True)
        results: list[object] = []

        async def get(key: str) -> None:
            results.append(await customers.get(key))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(get, "taken")  # taken by the actor, held at the gate
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(get, "queued-1")
            nursery.start_soon(get, "queued-2")
            await trio.testing.wait_all_tasks_blocked()
            assert db.stats().actors["Customer"].mailbox_depth == 2
            with pytest.raises(netabase.Overloaded, match="Customer"):
                await customers.with_options(block=False).get("refused")
            nursery.start_soon(get, "waits-for-room")
            await trio.testing.wait_all_tasks_blocked()
            assert len(results) == 0
            backend.open_gate()
        assert results == [None] * 4


async def test_crashed_actor_answers_actor_crashed_and_restarts(tmp_path: Path) -> None:
    async with netabase.open(f"lmdb://{tmp_path}/db", models=MODELS) as db:
        customers = db.store(Customer)
        await customers.insert(Customer("a", "A"))
        inject_fault(db, Customer, "batch")
        with pytest.raises(netabase.ActorCrashed) as info:
            await customers.get("a")
        assert isinstance(info.value.cause, InjectedFault) and info.value.model == "Customer"
        assert await customers.get("a") == Customer("a", "A")
        stats = db.stats().actors
        assert stats["Customer"].restarts == 1 and stats["Order"].restarts == 0
        assert stats["Customer"].cache_size == 1  # refilled after the restart emptied it


async def test_crash_before_commit_writes_nothing(tmp_path: Path) -> None:
    async with netabase.open(f"lmdb://{tmp_path}/db", models=MODELS) as db:
        customers = db.store(Customer)
        inject_fault(db, Customer, "commit")
        with pytest.raises(netabase.ActorCrashed):
            await customers.insert_many([Customer("a", "A"), Customer("b", "B")])
        assert await customers.count() == 0


async def test_crash_after_commit_loses_no_acknowledged_write(tmp_path: Path) -> None:
    async with netabase.open(f"lmdb://{tmp_path}/db", models=MODELS) as db:
        customers = db.store(Customer)
        inject_fault(db, Customer, "committed")
        with pytest.raises(netabase.ActorCrashed):
            await customers.insert_many([Customer("a", "A"), Customer("b", "B")])
        assert await customers.get_many(["a", "b"]) == [Customer("a", "A"), Customer("b", "B")]


async def test_other_stores_keep_serving_while_one_crashes() -> None:
    async with netabase.open("memory://", models=MODELS) as db:
        await db.store(Customer).insert(Customer("c", "C"))
        inject_fault(db, Order, "batch")
        with pytest.raises(netabase.ActorCrashed):
            await db.store(Order).get(1)
        assert await db.store(Customer).get("c") == Customer("c", "C")


async def test_one_for_all_restarts_every_actor() -> None:
    async with netabase.open("memory://", models=MODELS, strategy="one_for_all") as db:
        inject_fault(db, Order, "batch")
        with pytest.raises(netabase.ActorCrashed):
            await db.store(Order).get(1)
        await db.store(Customer).get("x")
        assert {name: s.restarts for name, s in db.stats().actors.items()} == {
            "Customer": 1,
            "Order": 1,
            "~permissions": 1,
        }


async def test_restart_intensity_exceeded_fails_the_runtime() -> None:
    waiting: list[BaseException] = []
    with pytest.raises(netabase.RuntimeFailed) as info:
        async with netabase.open("memory://", models=MODELS, max_restarts=1) as db:
            inject_fault(db, Customer, "batch", times=5)
            with pytest.raises(netabase.ActorCrashed):
                await db.store(Customer).get("a")
            try:
                await db.store(Customer).get("a")
            except netabase.NetabaseError as exc:  # the caller of the fatal batch
                waiting.append(exc)
            await trio.sleep_forever()  # the runtime failing cancels the block
    assert info.value.model == "Customer" and info.value.restarts == 1
    assert isinstance(info.value.cause, InjectedFault)
    assert len(waiting) == 1 and isinstance(waiting[0], netabase.NetabaseError)


async def test_restarts_within_intensity_are_forgiven(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with netabase.open("memory://", models=MODELS, max_restarts=1, restart_period=5) as db:
        for _ in range(3):
            inject_fault(db, Customer, "batch")
            with pytest.raises(netabase.ActorCrashed):
                await db.store(Customer).get("a")
            await trio.sleep(6)
        assert db.stats().actors["Customer"].restarts == 3


async def test_leaving_the_block_drains_queued_requests_and_leaves_no_thread(
    tmp_path: Path,
) -> None:
    threads_before = set(threading.enumerate())
    url = f"lmdb://{tmp_path}/db"
    async with trio.open_nursery() as outside, netabase.open(url, models=MODELS) as db:
        customers = db.store(Customer)
        for i in range(20):
            outside.start_soon(customers.insert, Customer(str(i), "queued"))
        await trio.testing.wait_all_tasks_blocked()
    assert set(threading.enumerate()) == threads_before
    async with netabase.open(url, models=MODELS) as db:
        assert await db.store(Customer).count() == 20
    with pytest.raises(netabase.Closed):
        await customers.get("1")
    assert set(threading.enumerate()) == threads_before


async def test_exception_in_the_block_propagates_unwrapped() -> None:
    with pytest.raises(KeyError, match="mine"):
        async with netabase.open("memory://", models=MODELS):
            raise KeyError("mine")


async def test_a_group_raised_in_the_block_comes_back_as_itself() -> None:
    mine = ExceptionGroup("mine", [KeyError("k")])
    with pytest.raises(ExceptionGroup) as info:
        async with netabase.open("memory://", models=MODELS):
            raise mine
    assert info.value.message == "mine" and info.value.exceptions == mine.exceptions


async def test_the_block_keeps_calling_after_the_runtime_failed() -> None:
    with pytest.raises(netabase.RuntimeFailed):
        async with netabase.open("memory://", models=MODELS, max_restarts=1) as db:
            inject_fault(db, Customer, "batch", times=10)
            for _ in range(3):
                with contextlib.suppress(netabase.ActorCrashed, netabase.RuntimeFailed):
                    await db.store(Customer).get("a")
            await db.store(Order).get(1)  # RuntimeFailed here, raised out of the block


async def test_cancelling_the_block_from_outside_drains_and_leaves() -> None:
    with trio.fail_after(10):  # it used to hang here
        with trio.move_on_after(0.05) as scope:
            async with netabase.open("memory://", models=MODELS) as db:
                await db.store(Customer).insert(Customer("a", "A"))
                await trio.sleep_forever()
        assert scope.cancelled_caught
        opened = trio.Event()
        with pytest.raises(ExceptionGroup) as info:
            async with trio.open_nursery() as nursery:

                async def sibling_fails() -> None:
                    await opened.wait()
                    raise ValueError("sibling")

                nursery.start_soon(sibling_fails)
                async with netabase.open("memory://", models=MODELS) as db:
                    opened.set()
                    await trio.sleep_forever()
        assert [type(e) for e in info.value.exceptions] == [ValueError]


async def test_callers_who_left_leave_no_deadline_entries_and_no_empty_batches() -> None:
    async with netabase.open("memory://", models=MODELS) as db:
        customers = db.store(Customer)
        for i in range(100):
            with trio.move_on_after(0):  # each caller leaves while its request is queued
                await customers.insert(Customer(f"c{i}", "x"))
        await trio.testing.wait_all_tasks_blocked()
        stats = db.stats().actors["Customer"]
        assert await customers.count() == 0
        assert stats.batches == 0 and stats.mean_batch == 0.0
        assert db._runtime.deadlines.pending() <= 1  # the count() above, at most
