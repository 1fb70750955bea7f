"""Storage backends and the URL scheme registry.

``memory://``, ``lmdb://PATH`` and ``redis://HOST:PORT/DB`` are built in; `register_backend` adds
a scheme, served by a `Backend` subclass's ``from_url`` or by a factory taking the parsed URL.
Either returns an unstarted `Backend`.
"""

from __future__ import annotations

from ._base import (
    EXISTS,
    ApplyResult,
    Backend,
    Condition,
    Delete,
    Expect,
    ExpectKeys,
    Op,
    Put,
    Stamped,
    WriteBatch,
)
from ._snapshot import LiveSnapshot, Snapshot, SnapshotLost
from ._url import BackendFactory, BackendURL, open_backend, register_backend

__all__ = [
    "EXISTS",
    "ApplyResult",
    "Backend",
    "BackendFactory",
    "BackendURL",
    "Condition",
    "Delete",
    "Expect",
    "ExpectKeys",
    "LiveSnapshot",
    "Op",
    "Put",
    "Snapshot",
    "SnapshotLost",
    "Stamped",
    "WriteBatch",
    "open_backend",
    "register_backend",
]
