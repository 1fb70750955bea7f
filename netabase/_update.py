"""`update`: one record's read-modify-write, as `get_versioned` then ``insert(if_version=)``,
retried with jittered exponential backoff while other processes win the race.

Updates of one key from one open database never race each other (they could only make all
but one of them retry): they queue, and the first in the queue serves every plain update
queued behind it with one read and one conditional write, running their functions one after
another on the record each left (flat combining; each caller gets the record its function
returned, as if the updates had run one by one). Only the write is shielded: a caller
cancelled while it serves the queue stops at its next read or pause and hands the queue on.
An enforced update is served alone, judged on its own record, and so is every update of a
model with links or unique fields, whose records the write itself checks.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import outcome
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


class _Pending:
    """One caller's update, waiting in its key's queue."""

    __slots__ = ("alone", "done", "fn", "gone", "lead", "result", "retries")

    def __init__(self, fn: Callable[[Any], Any], retries: int, alone: bool) -> None:
        self.fn = fn
        self.retries = retries
        self.alone = alone
        self.done = trio.Event()
        self.lead = False
        """Set when the caller is to serve the queue itself."""
        self.result: outcome.Outcome[Any] | None = None
        self.gone = False
        """Set when the caller stopped waiting (cancelled): it is never queued again."""

    def finish(self, result: outcome.Outcome[Any]) -> None:
        self.result = result
        self.done.set()


class _Queue:
    """The updates of one key: ``busy`` while one caller serves them."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.waiting: list[_Pending] = []
        self.busy = False


UpdateQueues = dict[tuple[str, bytes], "_Queue"]
"""One open database's update queues, by (model, encoded key)."""


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
    queues: UpdateQueues,
    info: ModelInfo[T],
    key: Any,
    fn: Callable[[T | None], T],
    retries: int,
    get_versioned: Callable[[Any], Awaitable[tuple[T | None, int]]],
    insert: Callable[..., Awaitable[Any]],
    *,
    alone: bool = False,
) -> T:
    """Apply ``fn`` to the record under ``key`` until its write lands; the record written.

    ``queues`` are the database's (`Routes.update_queues`); ``get_versioned`` and ``insert``
    are the (plain or enforced) store's own, so an enforced update (``alone``) is judged on
    every attempt."""
    encoded = info.encode_key(key)
    # The write checks links and unique values on the record it stores: a record that only
    # passes through a combined write would never be checked, nor fail its caller alone.
    alone = alone or bool(info.links or info.unique_fields)
    name = (info.name, encoded)
    queue = queues.get(name)
    if queue is None:
        queue = queues[name] = _Queue()
    mine = _Pending(fn, retries, alone)
    queue.waiting.append(mine)
    if queue.busy:
        try:
            await mine.done.wait()
        except BaseException:
            mine.gone = True
            if mine in queue.waiting:
                queue.waiting.remove(mine)
            if mine.lead:
                _hand_over(queues, name, queue)
            raise
        if not mine.lead:
            assert mine.result is not None
            return mine.result.unwrap()  # type: ignore[no-any-return]
    queue.busy = True
    served = _take(queue)
    try:
        await _serve(info, encoded, key, served, get_versioned, insert)
    except trio.Cancelled:
        # Cancelled at a read or a pause, so nothing of this attempt was written: the updates
        # it served go back to the head of the queue, and the first of them serves them.
        queue.waiting[:0] = [p for p in served if p.result is None and not p.gone and p is not mine]
        raise
    finally:
        _hand_over(queues, name, queue)
    assert mine.result is not None
    return mine.result.unwrap()  # type: ignore[no-any-return]


def _take(queue: _Queue) -> list[_Pending]:
    """The updates the next write serves: an enforced one alone, else every plain one at the
    head of the queue."""
    waiting = queue.waiting
    count = 1
    if not waiting[0].alone:
        while count < len(waiting) and not waiting[count].alone:
            count += 1
    served, queue.waiting = waiting[:count], waiting[count:]
    return served


def _hand_over(
    queues: dict[tuple[str, bytes], _Queue], name: tuple[str, bytes], queue: _Queue
) -> None:
    """Let the first caller still waiting serve the queue, or retire it."""
    if queue.waiting:
        first = queue.waiting[0]
        first.lead = True
        first.done.set()
        return
    queue.busy = False
    if queues.get(name) is queue:
        del queues[name]


async def _serve(
    info: ModelInfo[Any],
    encoded: bytes,
    key: Any,
    served: list[_Pending],
    get_versioned: Callable[[Any], Awaitable[tuple[Any, int]]],
    insert: Callable[..., Awaitable[Any]],
) -> None:
    """One read, every function in turn, one conditional write; again after a conflict."""
    live = served
    conflicts = 0
    try:
        while live:
            old, version = await get_versioned(key)
            current, applied = old, []
            combined = len(live) > 1
            # Combined, each function gets its own copy: one that changes its input in place
            # must not change the record an earlier caller got, nor leave a change if it fails.
            stored = info.codec.encode(old) if combined and old is not None else None
            for pending in live:
                given = current if stored is None else info.codec.decode(stored, encoded)
                try:
                    new = pending.fn(given)
                    _check_result(info, encoded, key, new)
                    if combined:  # a bad record must fail its own caller only
                        _, value = info.encode_record(new)
                except Exception as exc:  # this caller's: the others go on without it
                    pending.finish(outcome.Error(exc))
                    continue
                applied.append((pending, new))
                current = new
                if combined:
                    stored = value
            if not applied:
                return
            try:
                with trio.CancelScope(shield=True):  # the write is the commit point
                    await insert(current, if_version=version)
            except WriteConflict:
                conflicts += 1
                live = []
                for pending, _ in applied:
                    if conflicts > pending.retries:
                        error = WriteConflict(info.name, conflicts, key=key)
                        pending.finish(outcome.Error(error))
                    else:
                        live.append(pending)
                await trio.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_FIRST * 2**conflicts)))
                continue
            for pending, new in applied:
                pending.finish(outcome.Value(new))
            return
    except trio.Cancelled:
        raise  # the caller puts the unfinished updates back in the queue
    except BaseException as exc:
        for pending in served:
            if pending.result is None:
                pending.finish(outcome.Error(exc))
        if not isinstance(exc, Exception):
            raise


def refuse_awaitable(model: str, key: Any, new: object) -> None:
    """An update function's result must not be an awaitable (a coroutine is closed, so it
    is not reported as never awaited)."""
    if inspect.isawaitable(new):
        if inspect.iscoroutine(new):
            new.close()
        raise ValidationError(
            model, "update's fn returned an awaitable; it must return the new record", key=key
        )


def _check_result(info: ModelInfo[Any], encoded: bytes, key: Any, new: object) -> None:
    """``new`` must be a record of the model under the updated key."""
    refuse_awaitable(info.name, key, new)
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
