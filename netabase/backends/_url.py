"""Parse database URLs and map their scheme to a backend factory."""

from __future__ import annotations

import importlib.metadata
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from .._errors import InvalidURL
from .._validate import MAX_SECONDS

if TYPE_CHECKING:
    from ._base import Backend


@attrs.frozen
class BackendURL:
    """A parsed ``scheme://location?options`` URL."""

    raw: str
    scheme: str
    location: str
    options: dict[str, str]

    def option(self, name: str, default: str) -> str:
        return self.options.get(name, default)

    def int_option(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        text = self.options.get(name)
        if text is None:
            return default
        allowed = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        try:
            value = int(text)
        except ValueError:
            raise InvalidURL(
                self.raw, f"option {name}={text[:40]!r} is not an integer ({allowed})"
            ) from None
        if value < minimum or (maximum is not None and value > maximum):
            shown = text if len(text) <= 40 else f"{text[:37]}..."
            side = f"below {minimum}" if value < minimum else f"above {maximum}"
            raise InvalidURL(self.raw, f"option {name}={shown} is {side} (allowed: {allowed})")
        return value

    def float_option(self, name: str, default: float) -> float:
        text = self.options.get(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise InvalidURL(self.raw, f"option {name}={text[:40]!r} is not a number") from None
        if not 0 < value <= MAX_SECONDS:
            raise InvalidURL(
                self.raw, f"option {name}={value} must be positive, at most {MAX_SECONDS:g}"
            )
        return value

    def bool_option(self, name: str, default: bool) -> bool:
        text = self.options.get(name)
        if text is None:
            return default
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise InvalidURL(self.raw, f"option {name}={text!r} is not a boolean")

    def check_options(self, known: set[str]) -> None:
        unknown = sorted(set(self.options) - known)
        if unknown:
            expected = ", ".join(sorted(known)) or "none"
            raise InvalidURL(self.raw, f"unknown option(s) {', '.join(unknown)}; known: {expected}")


def parse_url(url: str) -> BackendURL:
    if not isinstance(url, str):
        raise InvalidURL(repr(url), "a database URL must be a string such as 'lmdb://./data'")
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise InvalidURL(url, "expected scheme://location, e.g. memory://, lmdb://./data, redis://")
    location, _, query = rest.partition("?")
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidURL(url, f"malformed query string: {exc}") from None
    return BackendURL(url, scheme.lower(), urllib.parse.unquote(location), dict(pairs))


def _memory(url: BackendURL) -> Backend:
    from .memory import MemoryBackend

    url.check_options(set())
    if url.location:
        raise InvalidURL(url.raw, "memory:// takes no location")
    return MemoryBackend(url.raw)


def _lmdb(url: BackendURL) -> Backend:
    from . import lmdb

    url.check_options({"map_size", "max_dbs", "max_readers", "sync"})
    if not url.location:
        raise InvalidURL(url.raw, "lmdb:// needs a directory path, e.g. lmdb://./data")
    if "\x00" in url.location:
        raise InvalidURL(url.raw, "the LMDB path contains a NUL character")
    return lmdb.LmdbBackend(
        url.raw,
        url.location,
        map_size=url.int_option(
            "map_size", lmdb.DEFAULT_MAP_SIZE, minimum=lmdb.MIN_MAP_SIZE, maximum=lmdb.MAX_MAP_SIZE
        ),
        max_dbs=url.int_option(
            "max_dbs", lmdb.DEFAULT_MAX_DBS, minimum=lmdb.MIN_MAX_DBS, maximum=lmdb.MAX_MAX_DBS
        ),
        max_readers=url.int_option(
            "max_readers", lmdb.DEFAULT_MAX_READERS, minimum=1, maximum=lmdb.MAX_MAX_READERS
        ),
        sync=url.bool_option("sync", True),
    )


def _redis(url: BackendURL) -> Backend:
    from .redis import RedisBackend

    return RedisBackend.from_url(url)


_FACTORIES: dict[str, Callable[[BackendURL], Backend]] = {
    "memory": _memory,
    "lmdb": _lmdb,
    "redis": _redis,
}


def register_backend(scheme: str, factory: Callable[[BackendURL], Backend]) -> None:
    """Make ``scheme://...`` URLs open backends built by ``factory``.

    A package can do the same without being imported first, through an entry point in the
    ``netabase.backends`` group named after the scheme.
    """
    if not scheme.isidentifier():
        raise ValueError(f"backend scheme must be an identifier, got {scheme!r}")
    _FACTORIES[scheme.lower()] = factory


def _from_entry_points(scheme: str) -> Callable[[BackendURL], Backend] | None:
    """A factory another package declared in the ``netabase.backends`` entry point group."""
    for entry in importlib.metadata.entry_points(group="netabase.backends", name=scheme):
        factory: Callable[[BackendURL], Backend] = entry.load()
        _FACTORIES[scheme] = factory
        return factory
    return None


def open_backend(url: str) -> Backend:
    """Build the (not yet started) backend a URL names."""
    parsed = parse_url(url)
    factory = _FACTORIES.get(parsed.scheme) or _from_entry_points(parsed.scheme)
    if factory is None:
        known = ", ".join(f"{name}://" for name in sorted(_FACTORIES))
        raise InvalidURL(url, f"unknown scheme {parsed.scheme!r}; known: {known}")
    return factory(parsed)
