"""netabase for scripts and notebooks: ``with connect_sync(url, models=[...]) as db``.

The trio runtime runs on a dedicated thread (`TrioPortal`); each call blocks the calling thread
until its reply, with the same typed API and the same `netabase` exceptions. Several threads may
share one connection: their calls are batched by the actors like concurrent tasks. The adapter
classes are generated from the trio API (see `netabase.adapters`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from . import _validate
from ._database import open_database
from ._portal import TrioPortal
from .adapters._sync import (
    SyncDatabase,
    SyncPermissions,
    SyncPrincipalView,
    SyncStore,
    SyncTransaction,
    SyncTransactionStore,
)

__all__ = [
    "SyncDatabase",
    "SyncPermissions",
    "SyncPrincipalView",
    "SyncStore",
    "SyncTransaction",
    "SyncTransactionStore",
    "connect_sync",
]


@contextmanager
def connect_sync(url: str, *, models: Iterable[type], **options: Any) -> Iterator[SyncDatabase]:
    """`netabase.open` for synchronous code; options are those of `netabase.open`.

    Leaving the block drains and closes the runtime and ends its thread.
    """
    chosen = list(_validate.collection("open", "models", models))  # before any thread starts
    portal = TrioPortal("netabase-sync")
    portal.start()
    try:
        held = portal.enter(open_database(url, models=chosen, **options))
        try:
            yield SyncDatabase(held.value, portal)
        finally:
            held.close()
    finally:
        portal.stop()
