"""`Store[T]`: the typed, non-blocking handle on one model's actor.

Keys and records are checked and encoded in the caller's task, so bad input raises there, before
anything is queued. Every call then waits for the actor with a deadline (`RequestTimeout`).
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from . import _validate
from ._auto import AUTO, uuid7
from ._errors import ValidationError, WriteConflict
from ._key_blocks import KeyTaken
from ._model import ModelInfo
from ._requests import DEFAULT_PAGE_SIZE, checked_scan, put_items
from ._update import DEFAULT_UPDATE_RETRIES, MAX_UPDATE_RETRIES, check_function, run_update
from .actors._calls import send
from .actors._claims import ClaimRefusal
from .actors._links import Referrer
from .actors._messages import (
    Contains,
    Count,
    Get,
    GetMany,
    GetVersioned,
    Insert,
    Message,
    Referrers,
    Remove,
    Scan,
)
from .actors._writes import Guard, PutItem, Rejudge
from .backends import Expect

if TYPE_CHECKING:
    from .actors._routes import Routes
    from .actors._store_actor import StoreActor

T = TypeVar("T")

MAX_VERSION = (1 << 64) - 1

MAX_KEY_ROUNDS = 16
"""Tries of an insert whose generated keys explicit inserts keep taking first."""

WriteItems = Callable[[list[PutItem], frozenset[bytes]], Awaitable[None]]
"""Writes encoded records; the second argument: generated keys that must still be free."""


class Store(Generic[T]):
    """Typed access to the records of one model; get one with ``db.store(Model)``."""

    __slots__ = ("_actor", "_block", "_deadlines", "_info", "_routes", "_timeout")

    def __init__(
        self,
        routes: Routes,
        actor: StoreActor,
        info: ModelInfo[T],
        *,
        timeout: float,
        block: bool = True,
    ) -> None:
        self._routes = routes
        self._actor = actor
        self._info = info
        self._timeout = timeout
        self._block = block
        self._deadlines = routes.deadlines

    def __repr__(self) -> str:
        return f"<netabase.Store {self._info.name}>"

    @property
    def model(self) -> type[T]:
        return self._info.cls

    def with_options(self, *, timeout: float | None = None, block: bool | None = None) -> Store[T]:
        """A view with another request deadline, or that raises `Overloaded` instead of waiting
        for room in a full mailbox (``block=False``)."""
        name = self._info.name
        return Store(
            self._routes,
            self._actor,
            self._info,
            timeout=self._timeout
            if timeout is None
            else _validate.seconds(name, "timeout", timeout),
            block=self._block if block is None else _validate.flag(name, "block", block),
        )

    def _call(self, message: Message, key: object = None) -> Coroutine[Any, Any, Any]:
        """`send` ``message`` to this store's actor (the coroutine itself: one frame less)."""
        return send(
            self._actor.mailbox,
            message,
            deadlines=self._deadlines,
            seconds=self._timeout,
            block=self._block,
            key=key,
        )

    # reads

    @overload
    async def get(self, key: Any, *, load: None = None) -> T | None: ...

    @overload
    async def get(self, key: Any, *, load: Sequence[str]) -> Loaded[T] | None: ...

    async def get(self, key: Any, *, load: Sequence[str] | None = None) -> T | Loaded[T] | None:
        """The record stored under ``key``, or None.

        With ``load`` (names of link fields) the answer is a `Loaded` holding the record and the
        records it links to, fetched with one request per target store.
        """
        fields = None if load is None else self._load_fields(load)
        record: T | None = await self._call(Get(self._info.encode_key(key)), key)
        if fields is None or record is None:
            return record
        return await self._load(record, fields)

    def _load_fields(self, load: object) -> list[str]:
        info = self._info
        if isinstance(load, str):
            raise ValidationError(
                info.name, f"load= takes a list of link field names, got the str {load!r}"
            )
        fields = list(_validate.collection(info.name, "load", load))
        by_field = {link.field: link for link in info.links}
        unknown = [field for field in fields if not isinstance(field, str) or field not in by_field]
        if unknown:
            raise ValidationError(
                info.name,
                f"load= names {', '.join(map(repr, unknown))}, not link fields; link fields: "
                f"{', '.join(by_field) or 'none'}",
                field=unknown[0] if isinstance(unknown[0], str) else "load",
            )
        return fields

    async def _load(
        self,
        record: T,
        fields: list[str],
        fetch: Callable[[ModelInfo[Any], list[Any]], Awaitable[list[Any]]] | None = None,
    ) -> Loaded[T]:
        """``record`` with its linked records, each target read with one `get_many` (or with
        ``fetch``: the enforced view's, which judges them)."""
        info = self._info
        by_field = {link.field: link for link in info.links}
        wanted: dict[str, list[Any]] = {}
        for field in fields:
            link = by_field[field]
            wanted.setdefault(link.target.name, []).extend(link.keys_of(record))
        found: dict[str, dict[Any, Any]] = {}
        routes = self._routes
        for target, keys in wanted.items():
            unique = list(dict.fromkeys(keys))
            actor = routes.actor_for(target)
            if fetch is None:
                store = Store(routes, actor, actor.info, timeout=self._timeout, block=self._block)
                fetched: list[Any] = await store.get_many(unique)
            else:
                fetched = await fetch(actor.info, unique)
            found[target] = dict(zip(unique, fetched, strict=True))
        linked: dict[str, Any] = {}
        for field in fields:
            link = by_field[field]
            records = found[link.target.name]
            if link.many:
                # A tuple keeps its order and repeats, position for position with the field.
                named_keys: tuple[Any, ...] = (
                    getattr(record, field) if link.container is tuple else link.keys_of(record)
                )
                linked[field] = tuple(records[k] for k in named_keys)
            else:
                named = link.keys_of(record)
                linked[field] = records[named[0]] if named else None
        return Loaded(record, linked)

    async def referrers(
        self, key: Any, model: type | None = None, field: str | None = None
    ) -> list[Referrer]:
        """Records that link to ``key``, from the reverse index (optionally one model/field).

        Each entry is checked against the referring record, so the answer is exact.
        """
        source = None
        if model is not None:
            source = self._routes.actor_for(model).info.name
        if field is not None and not isinstance(field, str):
            raise ValidationError(
                self._info.name, f"referrers(field=...) takes a field name, got {field!r}"
            )
        if field is not None:
            links = [
                (name, link_field)
                for (name, link_field), link in self._routes.schema.link_index.items()
                if link.target is self._info and source in (None, name)
            ]
            if all(link_field != field for _, link_field in links):
                known = ", ".join(f"{name}.{link_field}" for name, link_field in links) or "none"
                raise ValidationError(
                    self._info.name,
                    f"referrers(field={field!r}): no such link to {self._info.name}; "
                    f"links to it: {known}",
                    field=field,
                )
        entries: list[Referrer] = await self._call(Referrers(self._info.encode_key(key)), key)
        return [
            entry
            for entry in entries
            if (source is None or entry.model == source) and (field is None or entry.field == field)
        ]

    async def get_versioned(self, key: Any) -> tuple[T | None, int]:
        """The record under ``key`` and its version, ``(None, 0)`` when absent.

        The version grows on every write of the key, from any process; pass it to
        ``insert(..., if_version=)`` to write only if nobody wrote the key since."""
        found: tuple[T | None, int] = await self._call(
            GetVersioned(self._info.encode_key(key)), key
        )
        return found

    async def get_many(self, keys: Iterable[Any]) -> list[T | None]:
        """Records for ``keys`` in the same order (None where absent), in one actor round."""
        encode = self._info.encode_key
        wanted = _validate.collection(self._info.name, "keys", keys)
        records: list[T | None] = await self._call(GetMany([encode(key) for key in wanted]))
        return records

    async def contains(self, key: Any) -> bool:
        present: bool = await self._call(Contains(self._info.encode_key(key)), key)
        return present

    async def count(self) -> int:
        """Number of records (from the backend's index, without reading them)."""
        total: int = await self._call(Count())
        return total

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
        """Records in key order with ``start <= key < stop``, optionally only keys under
        ``prefix`` (a str/bytes prefix, or the leading elements of a tuple key).

        Pages of ``page_size`` are fetched as you iterate; each page is one consistent read, the
        whole scan is not a snapshot. A record whose bytes do not decode raises `CorruptRecord`,
        or is skipped with ``skip_corrupt=True``.
        """
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
        )

    async def _fetch_page(
        self, lo: bytes, hi: bytes | None, limit: int, reverse: bool
    ) -> list[tuple[bytes, Any]]:
        page: list[tuple[bytes, Any]] = await self._call(Scan(lo, hi, limit, reverse))
        return page

    # writes

    async def insert(
        self, record: T, *, if_absent: bool = False, if_version: int | None = None
    ) -> T:
        """Store ``record`` under its key, replacing any record there; durable on return.

        ``if_absent``: only if the key holds no record, else `AlreadyExists`. ``if_version``:
        only if the stored record is at that version (from `get_versioned`; 0: absent), else
        `WriteConflict`. Returns the record as stored: with its key filled in if the key is
        ``netabase.auto()`` (a generated key never replaces a record).
        """
        absent, version = self._conditions(if_absent, if_version)
        key = getattr(record, self._info.key_field, None)  # a non-record: `_items` says so
        if key is not AUTO:
            await self._put(put_items(self._info, [record]), False, None, key, absent, version)
            return record
        (stored,) = await self._inserted([record], self._write(False), version)
        return stored

    async def insert_many(self, records: Iterable[T], *, if_absent: bool = False) -> list[T]:
        """Store every record, all or none of them, in one atomic batch; with ``if_absent``
        only if none of the keys holds a record (else `AlreadyExists`, nothing written).
        Returns them as stored (generated keys filled in)."""
        absent, _ = self._conditions(if_absent, None)
        wanted = list(_validate.collection(self._info.name, "records", records))
        if self._info.auto is None:
            if wanted:
                await self._put(put_items(self._info, wanted), True, None, None, absent)
            return wanted
        return await self._inserted(wanted, self._write(True, absent=absent)) if wanted else []

    async def update(
        self,
        key: Any,
        fn: Callable[[T | None], T],
        *,
        retries: int = DEFAULT_UPDATE_RETRIES,
    ) -> T:
        """Atomically replace the record under ``key`` by ``fn(old)`` (``old`` None when
        absent) and return it; ``fn`` runs again, after a short random pause, whenever another
        write got there first, at most ``retries`` times more (then `WriteConflict`).

        ``fn`` must be a plain function returning a record with the same key; an exception it
        raises propagates and nothing is written."""
        name = self._info.name
        check_function(name, fn)
        count = _validate.integer(name, "retries", retries, maximum=MAX_UPDATE_RETRIES)
        return await run_update(
            self._routes.update_queues,
            self._info,
            key,
            fn,
            count,
            self.get_versioned,
            self.insert,
        )

    def _conditions(self, if_absent: object, if_version: object) -> tuple[bool, int | None]:
        """The checked ``if_absent`` / ``if_version`` of an insert."""
        name = self._info.name
        absent = _validate.flag(name, "if_absent", if_absent)
        version = _validate.optional_integer(name, "if_version", if_version, maximum=MAX_VERSION)
        if absent and version is not None:
            raise ValidationError(
                name,
                "if_absent and if_version cannot be combined (if_version=0 means absent)",
                field="if_version",
            )
        return absent, version

    def _write(self, many: bool, key: object = None, *, absent: bool = False) -> WriteItems:
        async def write(items: list[PutItem], fresh: frozenset[bytes]) -> None:
            space = self._info.space
            guard = Guard(tuple(Expect(space, k, None) for k in fresh)) if fresh else None
            try:
                await self._put(items, many, guard, key, absent)
            except Rejudge:  # the only conditions of the guard: a generated key was taken
                raise KeyTaken() from None
            except ClaimRefusal as refusal:  # a guarded write is told the holder: name it
                raise refusal.redacted(True) from None

        return write

    async def _inserted(
        self, records: list[T], write: WriteItems, if_version: int | None = None
    ) -> list[T]:
        """``records`` with their generated keys filled, once ``write`` stored them; a generated
        key an explicit insert took first (`KeyTaken`) is generated again."""
        info = self._info
        field = info.key_field
        blank = [i for i, record in enumerate(records) if getattr(record, field, None) is AUTO]
        if not blank or info.auto is None:  # an unfilled key of another model: `_items` says so
            await write(put_items(self._info, records), frozenset())
            return records
        if if_version is not None:
            raise ValidationError(
                info.name,
                "if_version names a stored version, and a generated key has none",
                field="if_version",
            )
        blocks = self._routes.key_blocks.get(info.name)
        given = [key for key in (getattr(r, field, None) for r in records) if key is not AUTO]
        for _ in range(MAX_KEY_ROUNDS):
            wanted = len(blank)
            if blocks is None:
                keys: list[Any] = [uuid7() for _ in blank]
            else:
                keys = await blocks.fresh(wanted, seconds=self._timeout, given=given)
            filled = list(records)
            for index, key in zip(blank, keys, strict=True):
                filled[index] = info.with_key(records[index], key)
            items = put_items(self._info, filled)
            try:
                await write(items, frozenset(items[index].key for index in blank))
            except KeyTaken:
                if blocks is not None:
                    blocks.discard()
                continue
            return filled
        raise WriteConflict(info.name, MAX_KEY_ROUNDS)

    async def _put(
        self,
        items: list[PutItem],
        many: bool,
        guard: Guard | None,
        key: object = None,
        if_absent: bool = False,
        if_version: int | None = None,
    ) -> None:
        """The write behind every insert; the enforced view passes a `Guard`."""
        await self._call(Insert(items, many, guard, if_absent, if_version), key)

    async def remove(self, key: Any) -> bool:
        """Remove the record under ``key``; True if there was one."""
        removed: bool = await self._remove([self._info.encode_key(key)], False, None, key)
        return removed

    async def remove_many(self, keys: Iterable[Any]) -> int:
        """Remove the records under ``keys`` atomically; return how many existed."""
        encode = self._info.encode_key
        encoded = [encode(key) for key in _validate.collection(self._info.name, "keys", keys)]
        if not encoded:
            return 0
        removed: int = await self._remove(encoded, True, None)
        return removed

    async def _remove(
        self, keys: list[bytes], many: bool, guard: Guard | None, key: object = None
    ) -> Any:
        """The write behind every removal: a bool (``many`` False) or a count."""
        return await self._call(Remove(keys, many, guard), key)


class Loaded(Generic[T]):
    """A record with the records its link fields name (None / a tuple, where absent)."""

    __slots__ = ("links", "record")

    def __init__(self, record: T, links: dict[str, Any]) -> None:
        self.record = record
        self.links = links

    def __getitem__(self, field: str) -> Any:
        return self.links[field]

    def __repr__(self) -> str:
        return f"Loaded({self.record!r}, {self.links!r})"
