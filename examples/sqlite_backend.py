"""A netabase backend on SQLite (standard library only), written from docs/backends.md alone.

    import examples.sqlite_backend          # registers the sqlite:// scheme
    async with netabase.open("sqlite:///path/to/file.db?timeout=5", models=[...]) as db: ...

One table holds every space (``space, key, value``, primary key ``(space, key)``: SQLite compares
BLOBs with memcmp, which is exactly the bytewise order the protocol asks for), another the
versions. Each call runs on a worker thread holding the one connection; ``apply`` is a single
``BEGIN IMMEDIATE`` transaction, so batches are checked and applied atomically and other
processes using the same file see them whole. This is an example, not a fast backend: every
call is a thread hop. `SqliteBackend.from_url` parses the URL: the path, and ``timeout`` (seconds
a write waits for another process's lock, default 5).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import trio

import netabase
from netabase.backends import (
    EXISTS,
    ApplyResult,
    Backend,
    BackendURL,
    Delete,
    Expect,
    ExpectKeys,
    WriteBatch,
)
from netabase.backends._base import check_key_sizes

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (space TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
                               PRIMARY KEY (space, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (space TEXT PRIMARY KEY, version INTEGER NOT NULL);
"""


class SqliteBackend(Backend):
    """The protocol on one SQLite file; see the module docstring."""

    def __init__(self, url: str, path: str, *, timeout: float = 5.0) -> None:
        super().__init__(url)
        self.path = path
        self.timeout = timeout
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: BackendURL) -> SqliteBackend:
        """``sqlite://PATH?timeout=SECONDS``; anything else is an `InvalidURL` naming it."""
        url.check_options({"timeout"})
        if not url.location:
            raise netabase.InvalidURL(url.raw, "sqlite:// needs a file path")
        return cls(url.raw, url.location, timeout=url.float_option("timeout", 5.0))

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                if self._db is None:
                    raise netabase.BackendUnavailable(self.url, "the database is closed")
                try:
                    return work(self._db)
                except sqlite3.Error as exc:
                    raise netabase.BackendUnavailable(self.url, str(exc)) from exc

        return await trio.to_thread.run_sync(locked)

    async def start(self, spaces: Iterable[str]) -> None:
        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(
                self.path, timeout=self.timeout, check_same_thread=False, isolation_level=None
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            return db

        try:
            self._db = await trio.to_thread.run_sync(connect)
        except sqlite3.Error as exc:
            raise netabase.BackendUnavailable(self.url, str(exc)) from exc

    async def aclose(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await trio.to_thread.run_sync(db.close)

    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        def work(db: sqlite3.Connection) -> tuple[int, list[bytes | None]]:
            db.execute("BEGIN")
            try:
                version = _version(db, space)
                values = [_get(db, space, key) for key in keys]
            finally:
                db.execute("COMMIT")
            return version, values

        return await self._run(work)

    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        query = "SELECT key, value FROM kv WHERE space = ? AND key >= ?"
        params: list[object] = [space, lo]
        if hi is not None:
            query += " AND key < ?"
            params.append(hi)
        query += " ORDER BY key DESC" if reverse else " ORDER BY key"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        rows = await self._run(lambda db: db.execute(query, params).fetchall())
        return [(bytes(key), bytes(value)) for key, value in rows]

    async def apply(self, batches: Sequence[WriteBatch]) -> ApplyResult:
        check_key_sizes(batches)

        def work(db: sqlite3.Connection) -> ApplyResult:
            db.execute("BEGIN IMMEDIATE")
            try:
                failed: list[int | None] = []
                touched: set[str] = set()
                for batch in batches:
                    unmet = next(
                        (i for i, c in enumerate(batch.expects) if not _holds(db, c)), None
                    )
                    failed.append(unmet)
                    if unmet is not None:
                        continue
                    for op in batch.ops:
                        if isinstance(op, Delete):
                            db.execute(
                                "DELETE FROM kv WHERE space = ? AND key = ?", (op.space, op.key)
                            )
                        else:
                            db.execute(
                                "INSERT OR REPLACE INTO kv VALUES (?, ?, ?)",
                                (op.space, op.key, op.value),
                            )
                        touched.add(op.space)
                versions = {}
                for space in touched:
                    before = _version(db, space)
                    db.execute("INSERT OR REPLACE INTO versions VALUES (?, ?)", (space, before + 1))
                    versions[space] = (before, before + 1)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return ApplyResult(tuple(failed), versions)

        return await self._run(work)

    async def version(self, space: str) -> int:
        return await self._run(lambda db: _version(db, space))

    async def count(self, space: str) -> int:
        query = "SELECT COUNT(*) FROM kv WHERE space = ?"
        total: int = await self._run(lambda db: db.execute(query, (space,)).fetchone()[0])
        return total


def _get(db: sqlite3.Connection, space: str, key: bytes) -> bytes | None:
    row = db.execute("SELECT value FROM kv WHERE space = ? AND key = ?", (space, key)).fetchone()
    return None if row is None else bytes(row[0])


def _version(db: sqlite3.Connection, space: str) -> int:
    row = db.execute("SELECT version FROM versions WHERE space = ?", (space,)).fetchone()
    return 0 if row is None else int(row[0])


def _holds(db: sqlite3.Connection, condition: Expect | ExpectKeys) -> bool:
    if isinstance(condition, Expect):
        value = _get(db, condition.space, condition.key)
        if condition.value is EXISTS:
            return value is not None
        return value == condition.value
    lo, hi = condition.bounds()
    rows = db.execute(
        "SELECT key FROM kv WHERE space = ? AND key >= ? AND (? IS NULL OR key < ?)",
        (condition.space, lo, hi, hi),
    ).fetchall()
    return {bytes(key) for (key,) in rows} == condition.keys


netabase.register_backend("sqlite", SqliteBackend)
