"""Review: cancelling `netabase.open` on Redis, and cancelling its close, on every backend."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import attrs
import pytest
import trio

import netabase
from netabase.testing import RedisServer


@netabase.model(key="id")
@attrs.frozen
class Item:
    id: int


def _threads() -> int:
    """Live threads other than trio's idle worker cache (kept for reuse, not leaked)."""
    return sum(not t.name.startswith("Trio thread") for t in threading.enumerate())


def _url(kind: str, tmp_path: Path, server: RedisServer | None, n: int) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "lmdb":
        return f"lmdb://{tmp_path / str(n)}"
    assert server is not None
    return f"{server.url}?name=cancel-{uuid.uuid4().hex}"


@pytest.mark.timeout(60)
async def test_cancel_during_redis_start_up_returns(redis_server: RedisServer) -> None:
    threads = _threads()
    opened = 0
    for checkpoints in range(0, 40, 2):
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:

                async def cancel_after(
                    count: int = checkpoints, target: trio.CancelScope = scope
                ) -> None:
                    for _ in range(count):
                        await trio.lowlevel.checkpoint()
                    target.cancel()

                nursery.start_soon(cancel_after)
                async with netabase.open(
                    f"{redis_server.url}?name=c-{checkpoints}", models=[Item]
                ) as db:
                    opened += 1
                    await db.store(Item).insert(Item(1))
                    await trio.sleep_forever()
            assert scope.cancelled_caught
    assert opened < 20, "some cancels must land during start-up"
    # the server still serves a fresh open afterwards, and nothing was left running
    async with netabase.open(f"{redis_server.url}?name=after", models=[Item]) as db:
        await db.store(Item).insert(Item(2))
    assert _threads() <= threads, threading.enumerate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["memory", "lmdb", "redis"])
async def test_cancel_during_close_returns(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("redis_server") if kind == "redis" else None
    threads = _threads()
    cut_close: list[bool] = []
    for checkpoints in range(0, 24, 2):
        url = _url(kind, tmp_path, server, checkpoints)
        closed = trio.Event()
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                async with netabase.open(url, models=[Item]) as db:
                    for i in range(20):
                        nursery.start_soon(db.store(Item).insert, Item(i))
                    await trio.testing.wait_all_tasks_blocked()

                    async def cancel_after(
                        count: int = checkpoints, done: trio.Event = closed
                    ) -> None:
                        for _ in range(count):
                            await trio.lowlevel.checkpoint()
                        cut_close.append(not done.is_set())
                        scope.cancel()

                    nursery.start_soon(cancel_after)
                # leaving the block closes the runtime while cancel_after counts down
                closed.set()
        # reopening the same store works: the close released it (LMDB lock, Redis pool)
        async with netabase.open(url, models=[Item]) as db:
            assert await db.store(Item).count() >= 0
    assert any(cut_close), "some cancels must land while the close runs"
    assert _threads() <= threads, threading.enumerate()
