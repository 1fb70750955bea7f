"""netabase for asyncio applications: the same typed API, awaited on the asyncio loop.

The trio runtime runs beside the asyncio loop (guest mode by default, or a dedicated thread; see
`_bridge`), and every call is handed to it and awaited as an asyncio future, so the loop never
blocks on netabase. Errors arrive as the same `netabase` exceptions. The adapter classes are
generated from the trio API (see `netabase.adapters`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, Literal

from . import _validate
from ._bridge import (
    GuestRunner,
    Runner,
    ThreadRunner,
    acquire_guest,
    enter,
    leave,
    release_guest,
)
from ._database import open_database
from ._errors import ValidationError
from .adapters._asyncio import (
    AsyncioDatabase,
    AsyncioPermissions,
    AsyncioPrincipalView,
    AsyncioStore,
    AsyncioTransaction,
    AsyncioTransactionStore,
)

__all__ = [
    "AsyncioDatabase",
    "AsyncioPermissions",
    "AsyncioPrincipalView",
    "AsyncioStore",
    "AsyncioTransaction",
    "AsyncioTransactionStore",
    "Bridge",
    "open_asyncio",
]

Bridge = Literal["guest", "thread"]


@asynccontextmanager
async def open_asyncio(
    url: str, *, models: Iterable[type], bridge: Bridge = "guest", **options: Any
) -> AsyncIterator[AsyncioDatabase]:
    """`netabase.open` for asyncio (and anyio on asyncio): ``async with open_asyncio(...) as db``.

    ``bridge="guest"`` (default) runs trio in guest mode on this loop's thread;
    ``bridge="thread"`` runs it on a dedicated thread. Options are those of `netabase.open`.
    """
    chosen = list(_validate.collection("open", "models", models))  # before any thread starts
    if bridge not in ("guest", "thread"):
        raise ValidationError(
            "open", f"must be 'guest' or 'thread', got {bridge!r}", field="bridge"
        )
    runner: Runner
    if bridge == "guest":
        runner = await acquire_guest()
    else:
        runner = ThreadRunner()
        await runner.start()
    try:
        manager = open_database(url, models=chosen, **options)
        holder = await runner.call(enter, runner.nursery, manager)
        try:
            assert holder.value is not None
            yield AsyncioDatabase(holder.value, runner)
        finally:
            await runner.call(leave, holder)
    finally:
        if isinstance(runner, GuestRunner):
            await release_guest(runner)
        else:
            await runner.stop()
