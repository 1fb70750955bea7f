"""Public arguments turned into request parts, shared by `Store` and `TransactionStore`:
key ranges, encoded records, and the page-by-page iterator behind every ``scan``."""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

from . import _keys, _validate
from ._errors import CorruptRecord, ValidationError
from ._model import ModelInfo
from ._types import build_checker
from .actors._writes import PutItem

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 256

SKIPPED: Any = object()
"""A page entry `Pages` passes over silently (a record the principal may not read)."""

FetchPage = Callable[[bytes, bytes | None, int, bool], Awaitable[list[tuple[bytes, Any]]]]
"""(lo, hi, limit, reverse) -> up to ``limit`` (key, record or `CorruptRecord`) pairs."""


def put_items(info: ModelInfo[Any], records: Iterable[Any]) -> list[PutItem]:
    """Each record checked and encoded, with the target keys of its links."""
    items = []
    for record in _validate.collection(info.name, "records", records):
        key, value = info.encode_record(record)
        links = info.encode_links(record) if info.links else ()
        items.append(PutItem(key, value, record, links))
    return items


def key_range(
    info: ModelInfo[Any], start: Any, stop: Any, prefix: Any
) -> tuple[bytes, bytes | None]:
    """The encoded ``[lo, hi)`` of a scan (``hi`` None: to the end)."""
    lo = b"" if start is None else info.encode_key(start)
    hi = None if stop is None else info.encode_key(stop)
    if prefix is not None:
        encoded = _encode_prefix(info, prefix)
        lo = max(lo, encoded)
        upper = _keys.prefix_upper_bound(prefix, encoded)
        if upper is not None:
            hi = upper if hi is None else min(hi, upper)
    return lo, hi


def _encode_prefix(info: ModelInfo[Any], prefix: Any) -> bytes:
    key_type = info.key_type
    ok = (
        (key_type is str and isinstance(prefix, str))
        or (key_type is bytes and isinstance(prefix, bytes))
        or (isinstance(prefix, tuple) and key_type not in _keys.SCALAR_KEY_TYPES)
    )
    if not ok:
        raise ValidationError(
            info.name,
            f"prefix {prefix!r} does not fit key type {key_type!r}: use a str or bytes "
            "prefix for str/bytes keys, or a tuple of leading elements for tuple keys",
            field=info.key_field,
        )
    if isinstance(prefix, tuple):
        _check_tuple_prefix(info, prefix)
    try:
        return _keys.encode_prefix(prefix)
    except (TypeError, UnicodeEncodeError) as exc:
        raise ValidationError(info.name, f"bad prefix: {exc}", field=info.key_field) from None


def _check_tuple_prefix(info: ModelInfo[Any], prefix: tuple[Any, ...]) -> None:
    """Each element must fit the key element it stands for (a wrong one matches nothing)."""
    items = typing.get_args(info.key_type)
    variadic = len(items) == 2 and items[1] is Ellipsis
    if not items or (not variadic and len(prefix) > len(items)):
        raise ValidationError(
            info.name,
            f"prefix has {len(prefix)} elements, more than the key type {info.key_type!r}",
            field=info.key_field,
        )
    for index, element in enumerate(prefix):
        problem = build_checker(items[0 if variadic else index])(element)
        if problem is not None:
            raise ValidationError(
                info.name, f"bad prefix: item {index}: {problem}", field=info.key_field
            )


def checked_scan(
    info: ModelInfo[Any],
    fetch: FetchPage,
    *,
    start: Any,
    stop: Any,
    prefix: Any,
    limit: object,
    reverse: object,
    page_size: object,
    skip_corrupt: object,
    filtered: bool = False,
) -> Pages[Any]:
    """A public ``scan``'s arguments checked in the caller, as the `Pages` over ``fetch``
    (``filtered``: see `Pages`)."""
    name = info.name
    lo, hi = key_range(info, start, stop, prefix)
    return Pages(
        fetch,
        lo,
        hi,
        _validate.optional_integer(name, "limit", limit),
        _validate.flag(name, "reverse", reverse),
        _validate.page_size(name, page_size),
        _validate.flag(name, "skip_corrupt", skip_corrupt),
        filtered,
    )


class Pages(Generic[T]):
    """Async iterator over a key range, one ``fetch`` per page; corrupt records raise (or are
    skipped with ``skip_corrupt``). A ``filtered`` fetch may answer `SKIPPED` for entries the
    caller is not shown (the enforced view): its pages are always ``page_size`` long, since
    ``limit`` counts only the records shown."""

    def __init__(
        self,
        fetch: FetchPage,
        lo: bytes,
        hi: bytes | None,
        limit: int | None,
        reverse: bool,
        page_size: int,
        skip_corrupt: bool = False,
        filtered: bool = False,
    ) -> None:
        self._fetch_page = fetch
        self._filtered = filtered
        self._lo = lo
        self._hi = hi
        self._left = limit
        self._reverse = reverse
        self._page_size = page_size
        self._skip_corrupt = skip_corrupt
        self._page: list[tuple[bytes, Any]] = []
        self._index = 0
        self._exhausted = False

    def __aiter__(self) -> Pages[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._left == 0:
                raise StopAsyncIteration
            if self._index >= len(self._page):
                if self._exhausted:
                    raise StopAsyncIteration
                await self._fetch()
                if not self._page:
                    raise StopAsyncIteration
            _, record = self._page[self._index]
            self._index += 1
            if record is SKIPPED:
                continue
            if isinstance(record, CorruptRecord):
                if self._skip_corrupt:
                    continue
                raise record
            if self._left is not None:
                self._left -= 1
            return record  # type: ignore[no-any-return]

    async def _fetch(self) -> None:
        left = self._left
        want = self._page_size if left is None or self._filtered else min(self._page_size, left)
        page = await self._fetch_page(self._lo, self._hi, want, self._reverse)
        self._page = page
        self._index = 0
        if len(page) < want:
            self._exhausted = True
        elif page:
            last = page[-1][0]
            if self._reverse:
                self._hi = last
            else:
                self._lo = last + b"\x00"
