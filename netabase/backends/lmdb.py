"""``lmdb://PATH``: the embedded default. One environment, one named database per space.

Reads run inline on the trio thread in short read transactions (microseconds, memory-mapped).
Writes go to one long-lived writer thread (py-lmdb requires a write transaction to stay on the
thread that began it), which group-commits every `apply` waiting when it wakes: one transaction,
one fsync. The map grows by itself: on ``MapFullError`` the writer aborts, doubles the map size
and retries, so a user never sees it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import lmdb
import outcome
import trio

from .._errors import BackendUnavailable, InvalidURL
from .._layout import BACKEND_META_SPACE
from ._base import (
    ApplyResult,
    Backend,
    Condition,
    Delete,
    Expect,
    WriteBatch,
    check_key_sizes,
    matches,
    with_stamp,
)
from ._snapshot import LiveSnapshot, Snapshot, SnapshotLost
from ._worker import WorkerThread

if TYPE_CHECKING:
    from ._url import BackendURL

_META = BACKEND_META_SPACE
_OPEN_PATHS: set[str] = set()
_OPEN_PATHS_LOCK = threading.Lock()

DEFAULT_MAP_SIZE = 64 << 20
MIN_MAP_SIZE = 1 << 16
MAX_MAP_SIZE = (1 << 63) - 1
"""The map is the data file's size, an ``off_t``; the machine may allow less (then opening
fails with `BackendUnavailable`)."""
DEFAULT_MAX_DBS = 256
MIN_MAX_DBS = 8
MAX_MAX_DBS = 32767
"""Named databases (one per space); LMDB keeps per-transaction state for every slot."""
READER_CHECK_EVERY = 1.0
"""Seconds between frees of dead processes' reader slots while the writer thread is idle."""
OPEN_PATIENCE = 3.0
"""Seconds an open waits for a full reader table to be freed by another process."""
_READERS_FULL_HINT = (
    f"; every reader slot was still taken after {OPEN_PATIENCE:g}s (py-lmdb needs one to open):"
    " processes alive hold them (a netabase process with the environment open frees those of"
    " dead ones within a second), or raise ?max_readers="
)
DEFAULT_MAX_READERS = 126
MAX_MAX_READERS = 1 << 20
"""Reader slots in the lock file (64 bytes each), shared by every process using the path."""


def _version_bytes(version: int) -> bytes:
    return version.to_bytes(8, "big")


def _version_of(raw: bytes | memoryview | None) -> int:
    return 0 if raw is None else int.from_bytes(raw, "big")


class LmdbBackend(Backend):
    """LMDB environment at ``path``; durable on commit unless opened with ``sync=False``."""

    def __init__(
        self,
        url: str,
        path: str,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_dbs: int = DEFAULT_MAX_DBS,
        max_readers: int = DEFAULT_MAX_READERS,
        sync: bool = True,
        reader_check_every: float | None = READER_CHECK_EVERY,
    ) -> None:
        super().__init__(url)
        self.path = os.path.abspath(path)
        self._initial_map_size = map_size
        self._max_dbs = max_dbs
        self._max_readers = max_readers
        self._reader_check_every = reader_check_every
        self._sync = sync
        self._env: lmdb.Environment | None = None
        self._dbs: dict[str, Any] = {}
        # Held by readers while a read transaction is open and by the writer while it resizes
        # the map: LMDB may only resize with no transaction active in the process.
        self._resize_lock = threading.Lock()
        self._snapshots: set[_LmdbSnapshot] = set()
        self._writer: WorkerThread[tuple[str, Any], Any] | None = None
        self.map_resizes = 0

    @classmethod
    def from_url(cls, url: BackendURL) -> LmdbBackend:
        """``lmdb://PATH?map_size=&max_dbs=&max_readers=&sync=``."""
        url.check_options({"map_size", "max_dbs", "max_readers", "sync"})
        if not url.location:
            raise InvalidURL(url.raw, "lmdb:// needs a directory path, e.g. lmdb://./data")
        if "\x00" in url.location:
            raise InvalidURL(url.raw, "the LMDB path contains a NUL character")
        return cls(
            url.raw,
            url.location,
            map_size=url.int_option(
                "map_size", DEFAULT_MAP_SIZE, minimum=MIN_MAP_SIZE, maximum=MAX_MAP_SIZE
            ),
            max_dbs=url.int_option(
                "max_dbs", DEFAULT_MAX_DBS, minimum=MIN_MAX_DBS, maximum=MAX_MAX_DBS
            ),
            max_readers=url.int_option(
                "max_readers", DEFAULT_MAX_READERS, minimum=1, maximum=MAX_MAX_READERS
            ),
            sync=url.bool_option("sync", True),
        )

    # lifecycle

    async def start(self, spaces: Iterable[str]) -> None:
        with _OPEN_PATHS_LOCK:
            if self.path in _OPEN_PATHS:
                raise BackendUnavailable(
                    self.url,
                    "this LMDB environment is already open in this process; LMDB forbids "
                    "opening it twice, so share the one open database",
                )
            _OPEN_PATHS.add(self.path)
        try:
            self._env = await self._open_env_patiently()
        except BaseException as exc:
            self._release_path()  # a failed open leaves the path free to be opened again
            if isinstance(exc, lmdb.Error | OSError | OverflowError | ValueError):
                hint = _READERS_FULL_HINT if isinstance(exc, lmdb.ReadersFullError) else ""
                raise BackendUnavailable(
                    self.url, f"cannot open LMDB environment: {exc}{hint}"
                ) from exc
            raise
        every = self._reader_check_every
        self._writer = WorkerThread(
            f"netabase-lmdb-writer:{self.path}",
            self._process_group,
            idle=None if every is None else self._free_dead_readers,
            idle_every=every or 1.0,
        )
        self._writer.start()
        try:
            await self._writer.submit(("spaces", [_META, *spaces]))
        except BaseException:
            await self.aclose()
            raise

    async def _open_env_patiently(self) -> lmdb.Environment:
        """Open; while every reader slot is taken (py-lmdb needs one to open), wait a little
        for a process that has the environment open to free the slots of dead ones."""
        give_up = trio.current_time() + OPEN_PATIENCE
        while True:
            try:
                return self._open_env()
            except lmdb.ReadersFullError:
                if trio.current_time() >= give_up:
                    raise
                await trio.sleep(0.05)

    def _free_dead_readers(self) -> None:
        """Run by the idle writer thread: a slot held by a killed process is freed within
        `READER_CHECK_EVERY` seconds, so new processes can open even if nobody here reads."""
        env = self._env
        if env is not None:
            env.reader_check()

    def _open_env(self) -> lmdb.Environment:
        os.makedirs(self.path, exist_ok=True)
        env = lmdb.open(
            self.path,
            map_size=self._initial_map_size,
            max_dbs=self._max_dbs,
            max_readers=self._max_readers,
            sync=self._sync,
            metasync=self._sync,
            subdir=True,
            lock=True,
            max_spare_txns=4,
        )
        try:
            env.set_mapsize(max(env.info()["map_size"], self._initial_map_size))
            # Slots of processes that died holding a read (kill -9) stay taken until checked.
            env.reader_check()
        except BaseException:
            env.close()
            raise
        return env

    async def aclose(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.stop()
        env, self._env = self._env, None
        if env is not None:
            with self._resize_lock:
                self._end_snapshots()
            env.close()
            self._release_path()

    def _release_path(self) -> None:
        with _OPEN_PATHS_LOCK:
            _OPEN_PATHS.discard(self.path)

    # reads (inline, trio thread)

    @contextlib.contextmanager
    def _read_txn(self) -> Iterator[lmdb.Transaction]:
        env = self._env
        if env is None:
            raise BackendUnavailable(self.url, "the environment is closed")
        with self._resize_lock:
            try:
                txn = _begin_read(env, self._end_snapshots)
            except lmdb.Error as exc:
                raise BackendUnavailable(self.url, f"cannot begin a read: {exc}") from exc
            try:
                yield txn
            finally:
                txn.abort()

    async def _db(self, space: str) -> Any:
        """The handle of ``space``'s named database, or None while nobody has written it.

        A space not passed to `start` may hold data written earlier (or by another process):
        its version says so, and the writer thread then opens its database for this process.
        """
        db = self._dbs.get(space)
        if db is None and await self.version(space):
            await self._submit(("spaces", [space]))
            db = self._dbs.get(space)
        return db

    async def _submit(self, job: tuple[str, Any]) -> Any:
        writer = self._writer
        if writer is None:
            raise BackendUnavailable(self.url, "the environment is closed")
        return await writer.submit(job)

    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        db = await self._db(space)
        with self._read_txn() as txn:
            version = _version_of(txn.get(space.encode(), db=self._dbs[_META]))
            if db is None:
                return version, [None] * len(keys)
            get = txn.get
            return version, cast(list[bytes | None], [get(key, db=db) for key in keys])

    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        db = await self._db(space)
        if db is None or limit == 0:
            return []
        with self._read_txn() as txn:
            return _scan(txn.cursor(db=db), lo, hi, limit, reverse)

    async def version(self, space: str) -> int:
        with self._read_txn() as txn:
            return _version_of(txn.get(space.encode(), db=self._dbs[_META]))

    async def snapshot(self) -> Snapshot:
        """A read transaction kept open (a reader slot: past half of ``max_readers`` live
        ones, the snapshot reads live instead, and the transaction relies on validation)."""
        # Checkpoint first: cancelled after the read began, nobody would ever close it.
        await trio.lowlevel.checkpoint()
        env = self._env
        if env is None:
            raise BackendUnavailable(self.url, "the environment is closed")
        if len(self._snapshots) >= max(1, self._max_readers // 2):
            return LiveSnapshot(self)
        with self._resize_lock:
            try:
                txn = _begin_read(env, self._end_snapshots)
            except lmdb.Error as exc:
                raise BackendUnavailable(self.url, f"cannot begin a read: {exc}") from exc
            snapshot = _LmdbSnapshot(self, txn)
            self._snapshots.add(snapshot)
        return snapshot

    def _end_snapshots(self) -> None:
        """LMDB resizes only with no transaction open in the process: end the snapshots
        (their readers get `SnapshotLost` and start again). Called holding the resize lock."""
        for snapshot in list(self._snapshots):
            snapshot.end()

    async def count(self, space: str) -> int:
        db = await self._db(space)
        if db is None:
            return 0
        with self._read_txn() as txn:
            return int(txn.stat(db)["entries"])

    # writes (writer thread)

    async def apply(self, batches: Sequence[WriteBatch]) -> ApplyResult:
        check_key_sizes(batches)
        result: ApplyResult = await self._submit(("apply", batches))
        return result

    def _process_group(self, jobs: Sequence[tuple[str, Any]]) -> list[outcome.Outcome[Any]]:
        env = self._env
        assert env is not None
        applied = [batch for kind, arg in jobs if kind == "apply" for batch in arg]
        try:
            self._create_spaces(
                {name for kind, arg in jobs if kind == "spaces" for name in arg}
                | {op.space for batch in applied for op in batch.ops},
                # A condition on a space written before this process started must see its data.
                existing={cond.space for batch in applied for cond in batch.expects},
            )
        except lmdb.Error as exc:
            hint = (
                f"; this environment allows max_dbs={self._max_dbs} spaces (raise it with "
                "?max_dbs=N in the URL)"
                if isinstance(exc, lmdb.DbsFullError)
                else ""
            )
            error = BackendUnavailable(self.url, f"cannot create databases: {exc}{hint}")
            return [outcome.Error(error) for _ in jobs]
        while True:
            try:
                txn = self._begin_write()
            except lmdb.Error as exc:
                error = BackendUnavailable(self.url, f"cannot begin a write: {exc}")
                return [outcome.Error(error) for _ in jobs]
            try:
                results: list[outcome.Outcome[Any]] = [
                    outcome.Value(self._apply_in(txn, arg) if kind == "apply" else None)
                    for kind, arg in jobs
                ]
                txn.commit()
                return results
            except lmdb.MapFullError:
                txn.abort()
                self._grow()
            except lmdb.Error as exc:
                txn.abort()
                error = BackendUnavailable(self.url, f"write failed: {type(exc).__name__}: {exc}")
                return [outcome.Error(error) for _ in jobs]

    def _create_spaces(self, names: set[str], existing: Iterable[str] = ()) -> None:
        """Open the databases of ``names`` (creating them) and of the ``existing`` ones that
        are there; only this thread opens databases, as LMDB requires."""
        missing = [name for name in names if name not in self._dbs]
        present = [name for name in set(existing) - names if name not in self._dbs]
        if not missing and not present:
            return
        env = self._env
        assert env is not None
        while True:
            txn = self._begin_write()
            try:
                handles = {name: env.open_db(name.encode(), txn=txn) for name in missing}
                for name in present:
                    with contextlib.suppress(lmdb.NotFoundError):
                        handles[name] = env.open_db(name.encode(), txn=txn, create=False)
                txn.commit()
            except lmdb.MapFullError:
                txn.abort()
                self._grow()
                continue
            except BaseException:
                txn.abort()
                raise
            self._dbs.update(handles)
            return

    def _begin_write(self) -> lmdb.Transaction:
        """A write transaction; adopts the map size if another process has grown it."""
        env = self._env
        assert env is not None
        try:
            return env.begin(write=True)
        except lmdb.MapResizedError:
            with self._resize_lock:
                self._end_snapshots()
                env.set_mapsize(0)
            self.map_resizes += 1
            return env.begin(write=True)

    def _grow(self) -> None:
        env = self._env
        assert env is not None
        with self._resize_lock:
            self._end_snapshots()
            env.set_mapsize(min(env.info()["map_size"] * 2, MAX_MAP_SIZE))
        self.map_resizes += 1

    def _apply_in(self, txn: lmdb.Transaction, batches: Sequence[WriteBatch]) -> ApplyResult:
        failed: list[int | None] = []
        touched: set[str] = set()
        stamps: dict[str, int] = {}
        dbs = self._dbs
        meta = dbs[_META]
        for batch in batches:
            unmet = next(
                (i for i, cond in enumerate(batch.expects) if not self._holds(txn, cond)), None
            )
            failed.append(unmet)
            if unmet is not None:
                continue
            for op in batch.ops:
                db = dbs[op.space]
                if isinstance(op, Delete):
                    txn.delete(op.key, db=db)
                elif op.stamp:
                    last = stamps.get(op.space)
                    if last is None:
                        last = _version_of(txn.get(op.space.encode(), db=meta))
                    stamps[op.space] = last + 1
                    txn.put(op.key, with_stamp(op.value, last + 1), db=db)
                else:
                    txn.put(op.key, op.value, db=db)
                touched.add(op.space)
        versions = {}
        for name in touched:
            before = _version_of(txn.get(name.encode(), db=meta))
            after = max(before + 1, stamps.get(name, 0))
            txn.put(name.encode(), _version_bytes(after), db=meta)
            versions[name] = (before, after)
        return ApplyResult(tuple(failed), versions)

    def _holds(self, txn: lmdb.Transaction, condition: Condition) -> bool:
        db = self._dbs.get(condition.space)
        if isinstance(condition, Expect):
            value = None if db is None else txn.get(condition.key, db=db)
            return matches(cast(bytes | None, value), condition.value)
        if db is None:
            return not condition.keys
        found = _scan(txn.cursor(db=db), *condition.bounds())
        return {key for key, _ in found} == condition.keys


class _LmdbSnapshot(Snapshot):
    """One read transaction held open across calls, used under the resize lock."""

    def __init__(self, backend: LmdbBackend, txn: lmdb.Transaction) -> None:
        self._backend = backend
        self._txn: lmdb.Transaction | None = txn

    def end(self) -> None:
        txn, self._txn = self._txn, None
        self._backend._snapshots.discard(self)
        if txn is not None:
            txn.abort()

    def close(self) -> None:
        with self._backend._resize_lock:
            self.end()

    def _open(self) -> lmdb.Transaction:
        if self._txn is None:
            raise SnapshotLost("the snapshot ended (closed, or the map was resized)")
        return self._txn

    async def read(self, space: str, keys: Sequence[bytes]) -> list[bytes | None]:
        backend = self._backend
        db = await backend._db(space)
        with backend._resize_lock:
            txn = self._open()
            if db is None:
                return [None] * len(keys)
            try:
                return cast(list[bytes | None], [txn.get(key, db=db) for key in keys])
            except lmdb.Error as exc:  # a database first opened after the snapshot began
                raise SnapshotLost(str(exc)) from exc

    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        backend = self._backend
        db = await backend._db(space)
        with backend._resize_lock:
            txn = self._open()
            if db is None or limit == 0:
                return []
            try:
                return _scan(txn.cursor(db=db), lo, hi, limit, reverse)
            except lmdb.Error as exc:
                raise SnapshotLost(str(exc)) from exc


def _begin_read(env: lmdb.Environment, before_resize: Callable[[], None]) -> lmdb.Transaction:
    """A read transaction, after adopting a map another process grew or freeing the reader
    slots of processes that died holding one (each fixed once, then LMDB's error stands)."""
    fixed: set[type[lmdb.Error]] = set()
    while True:
        try:
            return env.begin(buffers=False)
        except (lmdb.MapResizedError, lmdb.ReadersFullError) as exc:
            if type(exc) in fixed:
                raise
            fixed.add(type(exc))
            if isinstance(exc, lmdb.MapResizedError):
                before_resize()
                env.set_mapsize(0)
            else:
                env.reader_check()


def _scan(
    cursor: lmdb.Cursor,
    lo: bytes,
    hi: bytes | None,
    limit: int | None = None,
    reverse: bool = False,
) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    if limit == 0:
        return out
    if not reverse:
        if not cursor.set_range(lo):
            return out
        for key, value in cast(Iterator[tuple[bytes, bytes]], cursor.iternext()):
            if hi is not None and key >= hi:
                break
            out.append((key, value))
            if limit is not None and len(out) >= limit:
                break
        return out
    if hi is None:
        positioned = cursor.last()
    elif cursor.set_range(hi):
        positioned = cursor.prev()
    else:
        positioned = cursor.last()
    if not positioned:
        return out
    for key, value in cast(Iterator[tuple[bytes, bytes]], cursor.iterprev()):
        if key < lo:
            break
        out.append((key, value))
        if limit is not None and len(out) >= limit:
            break
    return out
