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
import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from . import _validate
from ._auto import AUTO, uuid7
from ._errors import (
    Closed,
    CorruptRecord,
    TransactionConflict,
    TransactionError,
    TransactionTimeout,
    TransactionTooLarge,
    ValidationError,
)
from ._layout import PERMISSION_SPACES
from ._model import ModelInfo
from ._requests import DEFAULT_PAGE_SIZE, SKIPPED, checked_scan, put_items
from ._store import MAX_KEY_ROUNDS
from ._update import check_function, refuse_awaitable
from .actors._cascade import RestrictRefusal
from .actors._claims import ClaimRefusal
from .actors._tx_view import TxView
from .actors._tx_writes import ENFORCED, TxWrites
from .actors._writes import PutItem
from .backends import Expect, SnapshotLost, WriteBatch

if TYPE_CHECKING:
    from types import TracebackType

    from ._tx_guard import TransactionGuard
    from .actors._leases import Lease
    from .actors._routes import Routes

T = TypeVar("T")
R = TypeVar("R")

_CURRENT: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
    "netabase_transaction", default=()
)
"""The databases (their `Routes`) this task has a transaction open on."""

MAX_BACKOFF = 0.05
"""Seconds: the longest pause `transact` makes between two attempts."""


class Transaction:
    """One attempt at a transaction; see the module docstring. Get one from
    ``db.transaction()`` and use it as ``async with``; ``tx.store(Model)`` reads and writes."""

    def __init__(self, routes: Routes, guard: TransactionGuard | None = None) -> None:
        self._routes = routes
        self._guard = guard
        config = routes.config
        self._timeout = config.transaction_timeout
        self._limit = config.max_transaction_size
        self._deadline = 0.0
        self._view: TxView | None = None
        self._lease: Lease | None = None
        self._writes: TxWrites | None = None
        self._lock = trio.Lock()
        self._state = "new"
        self._token: contextvars.Token[tuple[object, ...]] | None = None
        self._stores: dict[str, TransactionStore[Any]] = {}
        self._abandoned = False

    def __repr__(self) -> str:
        return f"<netabase.Transaction {self._state}>"

    async def __aenter__(self) -> Transaction:
        # Checkpoint first: cancelled after the mark below, `__aexit__` would never clear it.
        await trio.lowlevel.checkpoint()
        if self._state != "new":
            raise TransactionError("a transaction object is entered once; call db.transaction()")
        if any(open_on is self._routes for open_on in _CURRENT.get()):
            raise TransactionError(
                "db.transaction() inside a transaction would be a second, independent one; "
                "use the outer transaction's tx.store(...)"
            )
        self._token = _CURRENT.set((*_CURRENT.get(), self._routes))
        self._state = "open"
        self._deadline = trio.current_time() + self._timeout
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
                _CURRENT.set(tuple(r for r in _CURRENT.get() if r is not self._routes))
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
        info: ModelInfo[T] = self._routes.actor_for(model).info
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
        if self._abandoned:
            self._discard()
            raise TransactionError(
                "a call of this transaction was cancelled before its outcome was known (a "
                "write may or may not be staged); the transaction is discarded, start a new one"
            )
        if self._routes.is_closing():
            self._discard()
            raise Closed("transaction")
        if trio.current_time() > self._deadline:
            self._discard()
            raise TransactionTimeout(self._timeout)

    async def _ready(self) -> tuple[TxView, TxWrites]:
        """The view, its snapshot taken at the first read or write."""
        self._check_open()
        if self._view is None:
            routes = self._routes
            snapshot = await routes.backend.snapshot()
            self._lease = routes.leases.add(snapshot, self._deadline)
            self._view = TxView(snapshot)
            self._writes = TxWrites(routes.schema, routes.config, self._view)
        assert self._writes is not None
        return self._view, self._writes

    def _check_size(self, view: TxView) -> None:
        size = view.size()
        if size > self._limit:
            self._discard()
            raise TransactionTooLarge(size, self._limit)

    async def _run(self, step: Callable[[TxView, TxWrites], Awaitable[R]], adding: int = 0) -> R:
        """Run one read or write of the transaction, one at a time; ``adding``: the writes it
        will stage at least, refused before any planning if they cannot fit."""
        async with self._lock:
            view, writes = await self._ready()
            if adding and view.size() + adding > self._limit:
                self._discard()
                raise TransactionTooLarge(view.size() + adding, self._limit)
            try:
                result = await step(view, writes)
            except SnapshotLost:
                expired = trio.current_time() >= self._deadline  # closed by its lease
                self._discard()
                if expired:
                    raise TransactionTimeout(self._timeout) from None
                if self._routes.is_closing():
                    raise Closed("transaction") from None
                raise TransactionConflict(
                    None, detail=" (the backend ended its snapshot)"
                ) from None
            except TransactionConflict:
                self._discard()  # what it read cannot commit any more
                raise
            self._check_size(view)
            return result

    def _abandon(self) -> None:
        """A caller in another event loop gave up on a call before hearing its outcome: a
        write may have been staged, so the transaction may not commit (any thread may call)."""
        self._abandoned = True

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
        routes = self._routes
        result = await routes.backend.apply([batch])
        unmet = result.failed[0]
        if unmet is None:
            self._after_commit(view, result.versions)
        if unmet is not None:
            self._state = "conflicted"
            raise self._conflict(batch, unmet)
        self._state = "committed"

    def _after_commit(self, view: TxView, versions: Any) -> None:
        """The committed writes, in this process's caches (like a cascade from another actor)."""
        routes = self._routes
        caches = routes.caches
        for info in routes.schema.models.values():
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
        if self._guard is not None:
            return self._guard.conflict()
        condition = batch.expects[unmet]
        for info in self._routes.schema.models.values():
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
        """The record under ``key`` as the transaction sees it, or None (enforced: needs
        ``read`` on it)."""
        encoded = self._info.encode_key(key)
        (record,) = await self._tx._run(lambda view, _: self._read(view, [encoded]))
        return record

    async def get_many(self, keys: Iterable[Any]) -> list[T | None]:
        """Records for ``keys`` in the same order (None where absent)."""
        encode = self._info.encode_key
        encoded = [encode(key) for key in _validate.collection(self._info.name, "keys", keys)]
        return await self._tx._run(lambda view, _: self._read(view, encoded))

    async def contains(self, key: Any) -> bool:
        """Whether a record is under ``key`` (enforced: one the principal may not read answers
        False, like a missing one)."""
        encoded = self._info.encode_key(key)
        info, guard = self._info, self._tx._guard

        async def step(view: TxView, writes: TxWrites) -> bool:
            if guard is None:
                (found,) = await view.exists(info.space, [encoded])
                return found
            _, (raw,) = await view.read(info.space, [encoded])
            record = None if raw is None else self._info.decode_or_error(encoded, raw)
            (readable,) = await guard.readable(view, info, [encoded], [record])
            return readable and record is not None

        return await self._tx._run(step)

    async def count(self) -> int:
        """Number of records the transaction sees (reads every key, so a record another writer
        adds or removes conflicts; enforced: reads and judges every record, counting the
        readable ones)."""
        info, guard = self._info, self._tx._guard

        async def step(view: TxView, writes: TxWrites) -> int:
            if guard is None:
                return len(await view.keys(info.space))
            pairs = await view.scan(info.space)
            keys = [key for key, _ in pairs]
            records = [self._info.decode_or_error(key, raw) for key, raw in pairs]
            return sum(await guard.readable(view, info, keys, records))

        return await self._tx._run(step)

    def scan(
        self,
        *,
        start: Any = None,
        stop: Any = None,
        prefix: Any = None,
        limit: int | None = None,
        reverse: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        skip_corrupt: bool = False,
    ) -> AsyncIterator[T]:
        """Records in key order, as `Store.scan`; every page read joins the read set, so a
        record another writer adds to or removes from the range makes the commit conflict
        (enforced: only the records the principal may read)."""
        return checked_scan(
            self._info,
            self._fetch_page,
            start=start,
            stop=stop,
            prefix=prefix,
            limit=limit,
            reverse=reverse,
            page_size=page_size,
            skip_corrupt=skip_corrupt,
            filtered=self._tx._guard is not None,
        )

    async def _fetch_page(
        self, lo: bytes, hi: bytes | None, limit: int, reverse: bool
    ) -> list[tuple[bytes, Any]]:
        info, guard = self._info, self._tx._guard

        async def page(view: TxView, _: TxWrites) -> list[tuple[bytes, Any]]:
            pairs = await view.scan(info.space, lo, hi, limit=limit, reverse=reverse)
            decoded = [(key, self._info.decode_or_error(key, raw)) for key, raw in pairs]
            if guard is None or not decoded:
                return decoded
            keys = [key for key, _ in decoded]
            answers = await guard.readable(view, info, keys, [r for _, r in decoded])
            # The unreadable stay as placeholders: the page keeps its length for paging.
            shown = zip(decoded, answers, strict=True)
            return [pair if ok else (pair[0], SKIPPED) for pair, ok in shown]

        return await self._tx._run(page)

    async def _read(self, view: TxView, keys: list[bytes]) -> list[T | None]:
        _, values = await view.read(self._info.space, keys)
        records = [
            None if raw is None else self._info.decode_or_error(key, raw)
            for key, raw in zip(keys, values, strict=True)
        ]
        guard = self._tx._guard
        if guard is not None:
            await guard.check_reads(view, self._info, keys, records)
        found: list[T | None] = []
        for record in records:
            if isinstance(record, CorruptRecord):
                raise record
            found.append(record)
        return found

    # writes

    async def insert(self, record: T, *, if_absent: bool = False) -> T:
        """Stage ``record`` under its key (checked now: links, unique values, validators;
        enforced: as `GuardedStore.insert_many` judges it) and return it as it will be stored
        (a ``netabase.auto()`` key filled in). ``if_absent``: `AlreadyExists` now if the
        transaction sees a record there. (``if_version`` has no place here: the transaction's
        own reads already make it conditional on what it read.)"""
        absent = _validate.flag(self._info.name, "if_absent", if_absent)
        (stored,) = await self._insert_records([record], False, absent)
        return stored

    async def insert_many(self, records: Iterable[T], *, if_absent: bool = False) -> list[T]:
        """Stage every record (all of them or, on an error, none); returns them as stored."""
        absent = _validate.flag(self._info.name, "if_absent", if_absent)
        wanted = list(_validate.collection(self._info.name, "records", records))
        return await self._insert_records(wanted, True, absent) if wanted else []

    async def _insert_records(self, records: list[T], many: bool, absent: bool) -> list[T]:
        info = self._info
        field = info.key_field
        blank = [i for i, record in enumerate(records) if getattr(record, field, None) is AUTO]
        if not blank or info.auto is None:  # an unfilled key of another model: encoding says so
            items = put_items(info, records)
            await self._tx._run(
                lambda view, writes: self._insert(view, writes, items, many, absent), len(items)
            )
            return records
        routes = self._tx._routes
        blocks = routes.key_blocks.get(info.name)
        given = [key for key in (getattr(r, field, None) for r in records) if key is not AUTO]
        for _ in range(MAX_KEY_ROUNDS):
            if blocks is None:
                keys: list[Any] = [uuid7() for _ in blank]
            else:
                wait = routes.request_timeout
                keys = await blocks.fresh(len(blank), seconds=wait, given=given)
            filled = list(records)
            for index, key in zip(blank, keys, strict=True):
                filled[index] = info.with_key(records[index], key)
            items = put_items(info, filled)
            fresh = [items[index].key for index in blank]
            stage = functools.partial(self._insert_fresh, items, fresh, many, absent)
            if await self._tx._run(stage, len(items)):
                return filled
            if blocks is not None:
                blocks.discard()
        raise TransactionConflict(info.name, detail=" (its generated keys kept being taken)")

    async def _insert_fresh(
        self,
        items: list[PutItem],
        fresh: list[bytes],
        many: bool,
        absent: bool,
        view: TxView,
        writes: TxWrites,
    ) -> bool:
        """Stage records with generated keys; False if an explicit insert took one of them."""
        if any(await view.exists(self._info.space, fresh)):
            return False
        await self._insert(view, writes, items, many, absent)
        return True

    async def _insert(
        self, view: TxView, writes: TxWrites, items: list[PutItem], many: bool, absent: bool
    ) -> None:
        guard = self._tx._guard
        if guard is None:
            await writes.insert(self._info, items, many, None, absent)
            return
        await guard.check_insert(view, self._info, items)
        try:
            await writes.insert(self._info, items, many, ENFORCED, absent)
        except ClaimRefusal as refusal:
            raise await guard.claim_refused(self._info, refusal, items) from None

    async def remove(self, key: Any) -> bool:
        """Stage removing ``key`` (restrict / cascade / set_null planned now); True if present."""
        encoded = [self._info.encode_key(key)]
        removed: bool = await self._tx._run(
            lambda view, writes: self._remove(view, writes, encoded, False)
        )
        return removed

    async def remove_many(self, keys: Iterable[Any]) -> int:
        """Stage removing every key; the number that were present."""
        encode = self._info.encode_key
        encoded = [encode(key) for key in _validate.collection(self._info.name, "keys", keys)]
        if not encoded:
            return 0
        removed: int = await self._tx._run(
            lambda view, writes: self._remove(view, writes, encoded, True), len(encoded)
        )
        return removed

    async def _remove(self, view: TxView, writes: TxWrites, keys: list[bytes], many: bool) -> Any:
        info, guard = self._info, self._tx._guard
        if guard is None:
            ops, reply = await writes.plan_remove(info, keys, many, None)
        else:
            try:
                ops, reply = await writes.plan_remove(info, keys, many, ENFORCED)
            except RestrictRefusal as refusal:
                raise await guard.restrict_refused(info, refusal, keys) from None
            await guard.check_removal(view, info, keys, ops)
        view.stage(ops)
        return reply

    async def update(self, key: Any, fn: Callable[[T | None], T]) -> T:
        """``fn(old)`` (None when absent) stored under ``key``; returns what was stored."""
        info = self._info
        check_function(info.name, fn)
        old = await self.get(key)
        new = fn(old)
        refuse_awaitable(info.name, key, new)
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


async def transact(
    begin: Callable[[], Transaction],
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    retries: object,
) -> R:
    """Run ``fn(tx, *args)`` in a transaction, again on `TransactionConflict` (jittered
    exponential backoff), at most ``retries`` more times; then the last conflict is raised."""
    bound = checked_transact(fn, retries)
    attempt = 0
    while True:
        try:
            async with begin() as tx:
                return await fn(tx, *args)
        except TransactionConflict:
            if attempt >= bound:
                raise
        attempt += 1
        await trio.sleep(pause(attempt))


def pause(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt`` (1, 2, ...) of a transaction: jittered,
    doubling, never more than `MAX_BACKOFF`; every adapter's `transact` waits this long."""
    return random.uniform(0, min(MAX_BACKOFF, 0.001 * 2**attempt))


def checked_transact(fn: object, retries: object) -> int:
    """``transact``'s arguments checked in the caller: ``fn`` callable, ``retries`` a count."""
    if not callable(fn):
        raise ValidationError(
            "transact", f"takes an async function (tx, ...) -> result, got {fn!r}", field="fn"
        )
    return _validate.integer("transact", "retries", retries)
