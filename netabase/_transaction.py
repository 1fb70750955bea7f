"""Transactions across stores: ``async with db.transaction() as tx`` and ``db.transact``.

Optimistic and serializable. Reads come from one snapshot of the backend (LMDB: a read
transaction; memory: copy-on-write; Redis, which has none, reads live) overlaid by the
transaction's own writes, and everything read is recorded: values, existence, scanned ranges.
Writes are planned as they are made, with the store actors' planners (links, unique values,
cascades), and staged. The commit is one conditional atomic batch: the staged writes, applied
only if every recorded read still holds; otherwise `TransactionConflict` and nothing is applied.
No lock is held while the caller's code runs.

The commit point is the end of the ``async with`` block: cancelled inside the block, nothing is
applied; once the block has ended normally, the commit is shielded and applied whole (or
refused whole with `TransactionConflict`).
"""

from __future__ import annotations

import contextvars
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from . import _validate
from ._errors import (
    CorruptRecord,
    TransactionConflict,
    TransactionError,
    TransactionTimeout,
    TransactionTooLarge,
    ValidationError,
)
from ._model import ModelInfo
from ._requests import DEFAULT_PAGE_SIZE, Pages, key_range, put_items
from .actors._permission_spaces import SPACES as PERMISSION_SPACES
from .actors._tx_view import TxView
from .actors._tx_writes import TxWrites
from .backends import Expect, SnapshotLost, WriteBatch

if TYPE_CHECKING:
    from types import TracebackType

    from .actors._leases import Lease
    from .actors._runtime import Runtime

T = TypeVar("T")
R = TypeVar("R")

_CURRENT: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "netabase_transaction", default=None
)

MAX_BACKOFF = 0.05
"""Seconds: the longest pause `transact` makes between two attempts."""


class Transaction:
    """One attempt at a transaction; see the module docstring. Get one from
    ``db.transaction()`` and use it as ``async with``; ``tx.store(Model)`` reads and writes."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        config = runtime.config
        self._timeout = config.transaction_timeout
        self._limit = config.max_transaction_size
        self._deadline = 0.0
        self._view: TxView | None = None
        self._lease: Lease | None = None
        self._writes: TxWrites | None = None
        self._lock = trio.Lock()
        self._state = "new"
        self._token: contextvars.Token[Transaction | None] | None = None
        self._stores: dict[str, TransactionStore[Any]] = {}

    def __repr__(self) -> str:
        return f"<netabase.Transaction {self._state}>"

    async def __aenter__(self) -> Transaction:
        if self._state != "new":
            raise TransactionError("a transaction object is entered once; call db.transaction()")
        if _CURRENT.get() is not None:
            raise TransactionError(
                "db.transaction() inside a transaction would be a second, independent one; "
                "use the outer transaction's tx.store(...)"
            )
        self._token = _CURRENT.set(self)
        self._state = "open"
        self._deadline = trio.current_time() + self._timeout
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            try:
                _CURRENT.reset(self._token)
            except ValueError:  # entered in another task (an adapter's crossing)
                _CURRENT.set(None)
            self._token = None
        if exc_type is not None or self._state != "open":
            self._discard()
            return
        # The block ended normally: that is the commit point, and the commit is shielded.
        with trio.CancelScope(shield=True):
            async with self._lock:
                await self._commit()

    def store(self, model: type[T]) -> TransactionStore[T]:
        """Reads and writes of ``model`` inside this transaction."""
        info: ModelInfo[T] = self._runtime.actor_for(model).info
        store = self._stores.get(info.name)
        if store is None:
            store = self._stores[info.name] = TransactionStore(self, info)
        return store

    # each operation

    def _check_open(self) -> None:
        if self._state == "new":
            raise TransactionError("use the transaction inside `async with db.transaction()`")
        if self._state != "open":
            raise TransactionError(f"the transaction is {self._state}; start a new one")
        if trio.current_time() > self._deadline:
            self._discard()
            raise TransactionTimeout(self._timeout)

    async def _ready(self) -> tuple[TxView, TxWrites]:
        """The view, its snapshot taken at the first read or write."""
        self._check_open()
        if self._view is None:
            runtime = self._runtime
            snapshot = await runtime.backend.snapshot()
            self._lease = runtime.leases.add(snapshot, self._deadline)
            self._view = TxView(snapshot)
            self._writes = TxWrites(runtime.schema, runtime.config, self._view)
        assert self._writes is not None
        return self._view, self._writes

    def _check_size(self, view: TxView) -> None:
        size = view.size()
        if size > self._limit:
            self._discard()
            raise TransactionTooLarge(size, self._limit)

    async def _run(self, step: Callable[[TxView, TxWrites], Awaitable[R]]) -> R:
        """Run one read or write of the transaction, one at a time."""
        async with self._lock:
            view, writes = await self._ready()
            try:
                result = await step(view, writes)
            except SnapshotLost:
                expired = trio.current_time() >= self._deadline  # closed by its lease
                self._discard()
                if expired:
                    raise TransactionTimeout(self._timeout) from None
                raise TransactionConflict(
                    None, detail=" (the backend ended its snapshot)"
                ) from None
            self._check_size(view)
            return result

    # the end

    def _discard(self) -> None:
        if self._state in ("open", "new"):
            self._state = "discarded"
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    async def _commit(self) -> None:
        self._check_open()
        view = self._view
        if view is None:  # nothing was read or written
            self._state = "committed"
            return
        isolated = view.snapshot.isolated
        self._discard()  # the snapshot is not needed any more (and LMDB may need to resize)
        ops = view.ops()
        if not ops and isolated:
            # Read-only on one snapshot: serializable at the snapshot's point in time.
            self._state = "committed"
            return
        batch = view.batch()
        runtime = self._runtime
        result = await runtime.backend.apply([batch])
        unmet = result.failed[0]
        if unmet is None:
            self._after_commit(view, result.versions)
        if unmet is not None:
            self._state = "conflicted"
            raise self._conflict(batch, unmet)
        self._state = "committed"

    def _after_commit(self, view: TxView, versions: Any) -> None:
        """The committed writes, in this process's caches (like a cascade from another actor)."""
        runtime = self._runtime
        caches = runtime.caches
        for info in runtime.schema.models.values():
            written = view.written(info.space)
            if not written:
                continue
            for key, _ in written:
                caches.discard(info.name, key)
            deleted = [key for key, gone in written if gone]
            if deleted:
                caches.forget_links(info.name, deleted)
            caches.after_write(info.name, versions)
        if any(view.written(space) for space in PERMISSION_SPACES):
            caches.permissions_changed()

    def _conflict(self, batch: WriteBatch, unmet: int) -> TransactionConflict:
        condition = batch.expects[unmet]
        for info in self._runtime.schema.models.values():
            if condition.space == info.space:
                if isinstance(condition, Expect):
                    try:
                        return TransactionConflict(info.name, info.decode_key(condition.key))
                    except Exception:
                        return TransactionConflict(info.name)
                return TransactionConflict(info.name, detail=" (a key range it scanned)")
        return TransactionConflict(None)


class TransactionStore(Generic[T]):
    """``tx.store(Model)``: the store's reads and writes, inside the transaction. Reads see the
    transaction's own writes; constraints (links, unique values, restrict) are checked at each
    write against the transaction's state so far, like SQL's immediate constraints."""

    def __init__(self, tx: Transaction, info: ModelInfo[T]) -> None:
        self._tx = tx
        self._info = info

    def __repr__(self) -> str:
        return f"<netabase.TransactionStore {self._info.name}>"

    @property
    def model(self) -> type[T]:
        return self._info.cls

    # reads

    async def get(self, key: Any) -> T | None:
        """The record under ``key`` as the transaction sees it, or None."""
        encoded = self._info.encode_key(key)
        (record,) = await self._tx._run(lambda view, _: self._read(view, [encoded]))
        return record

    async def get_many(self, keys: Iterable[Any]) -> list[T | None]:
        """Records for ``keys`` in the same order (None where absent)."""
        encode = self._info.encode_key
        encoded = [encode(key) for key in _validate.collection(self._info.name, "keys", keys)]
        return await self._tx._run(lambda view, _: self._read(view, encoded))

    async def contains(self, key: Any) -> bool:
        encoded = self._info.encode_key(key)
        space = self._info.space
        (found,) = await self._tx._run(lambda view, _: view.exists(space, [encoded]))
        return found

    async def count(self) -> int:
        """Number of records the transaction sees (reads every key: a phantom conflicts)."""
        space = self._info.space
        keys = await self._tx._run(lambda view, _: view.keys(space))
        return len(keys)

    def scan(
        self,
        *,
        start: Any = None,
        stop: Any = None,
        prefix: Any = None,
        limit: int | None = None,
        reverse: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[T]:
        """Records in key order, as `Store.scan`; every page read joins the read set, so a
        record another writer adds to or removes from the range makes the commit conflict."""
        name = self._info.name
        lo, hi = key_range(self._info, start, stop, prefix)
        return Pages(
            self._fetch_page,
            lo,
            hi,
            _validate.optional_integer(name, "limit", limit),
            _validate.flag(name, "reverse", reverse),
            _validate.page_size(name, page_size),
        )

    async def _fetch_page(
        self, lo: bytes, hi: bytes | None, limit: int, reverse: bool
    ) -> list[tuple[bytes, Any]]:
        space = self._info.space

        async def page(view: TxView, _: TxWrites) -> list[tuple[bytes, bytes]]:
            return await view.scan(space, lo, hi, limit=limit, reverse=reverse)

        pairs = await self._tx._run(page)
        return [(key, self._decode_or_error(key, raw)) for key, raw in pairs]

    def _decode_or_error(self, key: bytes, raw: bytes) -> Any:
        try:
            return self._info.codec.decode(raw, key)
        except CorruptRecord as exc:
            return exc

    async def _read(self, view: TxView, keys: list[bytes]) -> list[T | None]:
        _, values = await view.read(self._info.space, keys)
        return [self._decode(key, raw) for key, raw in zip(keys, values, strict=True)]

    def _decode(self, key: bytes, raw: bytes | None) -> T | None:
        if raw is None:
            return None
        return self._info.codec.decode(raw, key)

    # writes

    async def insert(self, record: T) -> None:
        """Stage ``record`` under its key (checked now: links, unique values, validators)."""
        items = put_items(self._info, [record])
        await self._tx._run(lambda _, writes: writes.insert(self._info, items, False))

    async def insert_many(self, records: Iterable[T]) -> None:
        items = put_items(self._info, records)
        if items:
            await self._tx._run(lambda _, writes: writes.insert(self._info, items, True))

    async def remove(self, key: Any) -> bool:
        """Stage removing ``key`` (restrict / cascade / set_null planned now); True if present."""
        encoded = [self._info.encode_key(key)]
        removed: bool = await self._tx._run(
            lambda _, writes: writes.remove(self._info, encoded, False)
        )
        return removed

    async def remove_many(self, keys: Iterable[Any]) -> int:
        encode = self._info.encode_key
        encoded = [encode(key) for key in _validate.collection(self._info.name, "keys", keys)]
        if not encoded:
            return 0
        removed: int = await self._tx._run(
            lambda _, writes: writes.remove(self._info, encoded, True)
        )
        return removed

    async def update(self, key: Any, fn: Callable[[T | None], T]) -> T:
        """``fn(old)`` (None when absent) stored under ``key``; returns what was stored."""
        info = self._info
        check_update_function(info, fn)
        old = await self.get(key)
        new = fn(old)
        if not isinstance(new, info.cls):
            raise ValidationError(
                info.name,
                f"update function returned {type(new).__name__}, not a {info.name} record",
                key=key,
            )
        if info.encode_key(info.key_of(new)) != info.encode_key(key):
            raise ValidationError(
                info.name,
                f"update function changed the key to {info.key_of(new)!r}",
                key=key,
                field=info.key_field,
            )
        await self.insert(new)
        return new


def check_update_function(info: ModelInfo[Any], fn: object) -> None:
    """``fn`` must be a plain function of the old record (a coroutine would never run)."""
    if not callable(fn) or inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise ValidationError(
            info.name, f"update takes a plain function old -> new, got {fn!r}", field="fn"
        )


async def transact(
    begin: Callable[[], Transaction],
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    retries: int,
) -> R:
    """Run ``fn(tx, *args)`` in a transaction, again on `TransactionConflict` (jittered
    exponential backoff), at most ``retries`` more times; then the last conflict is raised."""
    attempt = 0
    while True:
        try:
            async with begin() as tx:
                return await fn(tx, *args)
        except TransactionConflict:
            if attempt >= retries:
                raise
        attempt += 1
        await trio.sleep(random.uniform(0, min(MAX_BACKOFF, 0.001 * 2**attempt)))


def check_transact_function(fn: object) -> None:
    if not callable(fn):
        raise ValidationError(
            "transact", f"takes an async function (tx, ...) -> result, got {fn!r}"
        )
