"""Storage backends and the URL scheme registry.

``memory://``, ``lmdb://PATH`` and ``redis://HOST:PORT/DB`` are built in; `register_backend` adds
a scheme. A factory takes the parsed URL and returns an unstarted `Backend`.
"""

from __future__ import annotations

from collections.abc import Callable

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
    WriteBatch,
)
from ._url import BackendURL, open_backend, register_backend

BackendFactory = Callable[[BackendURL], Backend]

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
    "Op",
    "Put",
    "WriteBatch",
    "open_backend",
    "register_backend",
]
