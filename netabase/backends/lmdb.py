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
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import lmdb
import outcome

from .._errors import BackendUnavailable
from ._base import (
    ApplyResult,
    Backend,
    Condition,
    Delete,
    Expect,
    WriteBatch,
    check_key_sizes,
    matches,
)
from ._worker import WorkerThread

_META = "~meta"
_OPEN_PATHS: set[str] = set()
_OPEN_PATHS_LOCK = threading.Lock()

DEFAULT_MAP_SIZE = 64 << 20
DEFAULT_MAX_DBS = 256


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
        sync: bool = True,
    ) -> None:
        super().__init__(url)
        self.path = os.path.abspath(path)
        self._initial_map_size = map_size
        self._max_dbs = max_dbs
        self._sync = sync
        self._env: lmdb.Environment | None = None
        self._dbs: dict[str, Any] = {}
        # Held by readers while a read transaction is open and by the writer while it resizes
        # the map: LMDB may only resize with no transaction active in the process.
        self._resize_lock = threading.Lock()
        self._writer: WorkerThread[tuple[str, Any], Any] | None = None
        self.map_resizes = 0

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
            os.makedirs(self.path, exist_ok=True)
            self._env = lmdb.open(
                self.path,
                map_size=self._initial_map_size,
                max_dbs=self._max_dbs,
                sync=self._sync,
                metasync=self._sync,
                subdir=True,
                lock=True,
                max_spare_txns=4,
            )
            self._env.set_mapsize(max(self._env.info()["map_size"], self._initial_map_size))
        except (lmdb.Error, OSError) as exc:
            self._release_path()
            raise BackendUnavailable(self.url, f"cannot open LMDB environment: {exc}") from exc
        self._writer = WorkerThread(f"netabase-lmdb-writer:{self.path}", self._process_group)
        self._writer.start()
        try:
            await self._writer.submit(("spaces", [_META, *spaces]))
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.stop()
        env, self._env = self._env, None
        if env is not None:
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
                txn = env.begin(buffers=False)
            except lmdb.MapResizedError:
                env.set_mapsize(0)  # another process grew the map: adopt its size
                txn = env.begin(buffers=False)
            except lmdb.Error as exc:
                raise BackendUnavailable(self.url, f"cannot begin a read: {exc}") from exc
            try:
                yield txn
            finally:
                txn.abort()

    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        db = self._dbs.get(space)
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
        db = self._dbs.get(space)
        if db is None or limit == 0:
            return []
        with self._read_txn() as txn:
            return _scan(txn.cursor(db=db), lo, hi, limit, reverse)

    async def version(self, space: str) -> int:
        with self._read_txn() as txn:
            return _version_of(txn.get(space.encode(), db=self._dbs[_META]))

    async def count(self, space: str) -> int:
        db = self._dbs.get(space)
        if db is None:
            return 0
        with self._read_txn() as txn:
            return int(txn.stat(db)["entries"])

    # writes (writer thread)

    async def apply(self, batches: Sequence[WriteBatch]) -> ApplyResult:
        check_key_sizes(batches)
        writer = self._writer
        if writer is None:
            raise BackendUnavailable(self.url, "the environment is closed")
        result: ApplyResult = await writer.submit(("apply", batches))
        return result

    def _process_group(self, jobs: Sequence[tuple[str, Any]]) -> list[outcome.Outcome[Any]]:
        env = self._env
        assert env is not None
        try:
            self._create_spaces(
                {name for kind, arg in jobs if kind == "spaces" for name in arg}
                | {op.space for kind, arg in jobs if kind == "apply" for b in arg for op in b.ops}
            )
        except lmdb.Error as exc:
            error = BackendUnavailable(self.url, f"cannot create databases: {exc}")
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

    def _create_spaces(self, names: set[str]) -> None:
        missing = [name for name in names if name not in self._dbs]
        if not missing:
            return
        env = self._env
        assert env is not None
        while True:
            txn = self._begin_write()
            try:
                handles = {name: env.open_db(name.encode(), txn=txn) for name in missing}
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
                env.set_mapsize(0)
            self.map_resizes += 1
            return env.begin(write=True)

    def _grow(self) -> None:
        env = self._env
        assert env is not None
        with self._resize_lock:
            env.set_mapsize(env.info()["map_size"] * 2)
        self.map_resizes += 1

    def _apply_in(self, txn: lmdb.Transaction, batches: Sequence[WriteBatch]) -> ApplyResult:
        failed: list[int | None] = []
        touched: set[str] = set()
        dbs = self._dbs
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
                else:
                    txn.put(op.key, op.value, db=db)
                touched.add(op.space)
        versions = {}
        meta = dbs[_META]
        for name in touched:
            before = _version_of(txn.get(name.encode(), db=meta))
            txn.put(name.encode(), _version_bytes(before + 1), db=meta)
            versions[name] = (before, before + 1)
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
