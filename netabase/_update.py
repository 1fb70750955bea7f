"""`update`: one record's read-modify-write, as `get_versioned` then ``insert(if_version=)``,
retried with jittered exponential backoff while other writers win the race.

Updates of one key from one open database take turns (a per-key lock, held only while the
read and the conditional write are away, never across a retry's pause): racing one another
they could only make all but one of them retry, so only other processes cause conflicts.
"""

from __future__ import annotations

import contextlib
import inspect
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import trio

from ._errors import ValidationError, WriteConflict, describe
from ._model import ModelInfo

T = TypeVar("T")

DEFAULT_UPDATE_RETRIES = 100
"""Conflicts an `update` absorbs before it raises `WriteConflict`."""
MAX_UPDATE_RETRIES = 100_000
BACKOFF_FIRST = 0.0002
BACKOFF_CAP = 0.02
"""Seconds: the first retry waits up to `BACKOFF_FIRST`, each later one up to twice as long,
never more than `BACKOFF_CAP` (uniformly drawn, so contenders spread out)."""


class _KeyLocks:
    """One lock per key being updated, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, bytes], tuple[trio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, model: str, key: bytes) -> AsyncIterator[None]:
        entry = (model, key)
        lock, users = self._locks.get(entry, (None, 0))
        if lock is None:
            lock = trio.Lock()
        self._locks[entry] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[entry]
            if users == 1:
                del self._locks[entry]
            else:
                self._locks[entry] = (lock, users - 1)


_LOCKS: weakref.WeakKeyDictionary[object, _KeyLocks] = weakref.WeakKeyDictionary()


def key_locks(owner: object) -> _KeyLocks:
    """The update locks of one open database (``owner``: its runtime)."""
    locks = _LOCKS.get(owner)
    if locks is None:
        locks = _LOCKS[owner] = _KeyLocks()
    return locks


def check_function(model: str, fn: object) -> None:
    """Refuse what cannot be ``fn(old) -> new``: a non-callable or a coroutine function."""
    if not callable(fn):
        raise ValidationError(
            model, f"update takes a function old -> new, got {describe(fn)}", field="fn"
        )
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call):
        raise ValidationError(
            model,
            "update takes a plain function old -> new, not a coroutine function: it runs "
            "between a read and a conditional write, so it must not await",
            field="fn",
        )


async def run_update(
    owner: object,
    info: ModelInfo[T],
    key: Any,
    fn: Callable[[T | None], T],
    retries: int,
    get_versioned: Callable[[Any], Awaitable[tuple[T | None, int]]],
    insert: Callable[..., Awaitable[None]],
) -> T:
    """Apply ``fn`` to the record under ``key`` until its write lands; the record written.

    ``get_versioned`` and ``insert`` are the (plain or enforced) store's own, so the enforced
    view judges the read and the write of every attempt; ``owner`` is the runtime."""
    encoded = info.encode_key(key)
    locks = key_locks(owner)
    conflicts = 0
    while True:
        try:
            async with locks.hold(info.name, encoded):
                old, version = await get_versioned(key)
                new = fn(old)
                _check_result(info, encoded, key, new)
                await insert(new, if_version=version)
        except WriteConflict:
            conflicts += 1
            if conflicts > retries:
                raise WriteConflict(info.name, conflicts, key=key) from None
            await trio.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_FIRST * 2**conflicts)))
            continue
        return new


def _check_result(info: ModelInfo[Any], encoded: bytes, key: Any, new: object) -> None:
    """``new`` must be a record of the model under the updated key."""
    if inspect.isawaitable(new):
        if inspect.iscoroutine(new):
            new.close()
        raise ValidationError(
            info.name, "update's fn returned an awaitable; it must return the new record", key=key
        )
    if not isinstance(new, info.cls):
        raise ValidationError(
            info.name,
            f"update's fn must return a {info.name} record, got {describe(new)}",
            key=key,
        )
    if info.encode_key(info.key_of(new)) != encoded:
        raise ValidationError(
            info.name,
            f"update's fn returned a record under key {info.key_of(new)!r}, not {key!r}",
            field=info.key_field,
            key=key,
        )
