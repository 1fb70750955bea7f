"""Cancelling `netabase.open` at any point of its start-up ends it instead of hanging."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

import netabase


@netabase.model(key="id")
@attrs.frozen
class Item:
    id: int


@pytest.mark.timeout(30)
@pytest.mark.parametrize("url_kind", ["memory", "lmdb"])
async def test_cancel_during_start_up_returns(url_kind: str, tmp_path: Path) -> None:
    opened = 0
    for checkpoints in range(16):
        url = "memory://" if url_kind == "memory" else f"lmdb://{tmp_path / str(checkpoints)}"
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:

                async def cancel_after(
                    count: int = checkpoints, target: trio.CancelScope = scope
                ) -> None:
                    for _ in range(count):
                        await trio.lowlevel.checkpoint()
                    target.cancel()

                nursery.start_soon(cancel_after)
                async with netabase.open(url, models=[Item]) as db:
                    opened += 1
                    await db.store(Item).insert(Item(1))
                    await trio.sleep_forever()
            assert scope.cancelled_caught
    if url_kind == "memory":  # LMDB start-up waits on a thread: no checkpoint count is known
        assert opened > 0, "some runs must get past start-up, so each phase of it is cut once"
