"""Database URLs: parsing, option helpers, and the registry mapping a scheme to a backend.

Each backend parses its own URL (``from_url``, or a factory passed to `register_backend`);
this module knows the built-in schemes only by module name and imports none of them until a
URL names one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import urllib.parse
from collections.abc import Callable
from typing import cast

import attrs

from .._errors import InvalidURL
from .._validate import MAX_SECONDS
from ._base import Backend

# A password may hold any character ('/', '?', '#' and '@' too, unencoded), so it is taken to
# run to the URL's last '@': redacting too much beats showing part of a secret.
_PASSWORD_IN_URL = re.compile(r"(://[^:/@?#]*):.*@")
_PASSWORD_OPTION = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` password (and ``password=`` option) replaced by
    ``***``; the exceptions that carry a URL (`InvalidURL`, `BackendUnavailable`) apply it to
    what they are given. A URL without ``://`` hides all before its last '@' but the scheme."""
    url = _PASSWORD_OPTION.sub(r"\1***", url)
    if "://" in url:
        return _PASSWORD_IN_URL.sub(r"\1:***@", url)
    at, colon = url.rfind("@"), url.find(":")
    return url if at < 0 or not 0 <= colon < at else f"{url[: colon + 1]}***{url[at:]}"


@attrs.frozen
class BackendURL:
    """A parsed ``scheme://location?options`` URL."""

    raw: str = attrs.field(repr=redact_url)
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
        if "@" in query:  # maybe a password cut at an unencoded '?': its tail is no query
            raise InvalidURL(
                url, "malformed query string; a '?' in a password must be percent-encoded"
            ) from None
        raise InvalidURL(url, f"malformed query string: {exc}") from None
    return BackendURL(url, scheme.lower(), urllib.parse.unquote(location), dict(pairs))


BackendFactory = Callable[[BackendURL], Backend]
"""Builds the (unstarted) backend a parsed URL names; raises `InvalidURL` naming the option."""

_FACTORIES: dict[str, BackendFactory] = {}
"""Schemes registered at run time (or found through entry points); they win over built-ins."""

_BUILT_IN = {
    "memory": "netabase.backends.memory:MemoryBackend",
    "lmdb": "netabase.backends.lmdb:LmdbBackend",
    "redis": "netabase.backends.redis:RedisBackend",
}
"""Built-in scheme -> ``module:class`` of the backend whose ``from_url`` serves it."""


def _as_factory(target: BackendFactory | type[Backend]) -> BackendFactory:
    """A `Backend` subclass stands for its ``from_url``; anything else is the factory itself."""
    if not callable(target):
        raise TypeError(
            f"a backend factory must be a Backend subclass or a function, got {target!r}"
        )
    if isinstance(target, type) and issubclass(target, Backend):
        if target.from_url.__func__ is Backend.from_url.__func__:  # type: ignore[attr-defined]
            raise TypeError(f"{target.__name__} must define from_url(url) to serve a URL scheme")
        return target.from_url
    return cast(BackendFactory, target)


def register_backend(scheme: str, factory: BackendFactory | type[Backend]) -> None:
    """Make ``scheme://...`` URLs open backends built by ``factory``: a `Backend` subclass
    (its ``from_url`` parses the URL) or a function from `BackendURL` to a backend; anything
    else raises `TypeError`.

    A package can do the same without being imported first, through an entry point in the
    ``netabase.backends`` group named after the scheme.
    """
    if not isinstance(scheme, str) or not scheme.isidentifier():
        raise ValueError(f"backend scheme must be an identifier, got {scheme!r}")
    _FACTORIES[scheme.lower()] = _as_factory(factory)


def _built_in(scheme: str) -> BackendFactory | None:
    where = _BUILT_IN.get(scheme)
    if where is None:
        return None
    module, _, name = where.partition(":")
    backend: type[Backend] = getattr(importlib.import_module(module), name)
    return backend.from_url


def _from_entry_points(scheme: str) -> BackendFactory | None:
    """A factory another package declared in the ``netabase.backends`` entry point group."""
    for entry in importlib.metadata.entry_points(group="netabase.backends", name=scheme):
        factory = _FACTORIES[scheme] = _as_factory(entry.load())
        return factory
    return None


def open_backend(url: str) -> Backend:
    """Build the (not yet started) backend a URL names."""
    parsed = parse_url(url)
    factory = (
        _FACTORIES.get(parsed.scheme)
        or _built_in(parsed.scheme)
        or _from_entry_points(parsed.scheme)
    )
    if factory is None:
        known = ", ".join(f"{name}://" for name in sorted(_FACTORIES.keys() | _BUILT_IN.keys()))
        raise InvalidURL(url, f"unknown scheme {parsed.scheme!r}; known: {known}")
    backend = factory(parsed)
    if not isinstance(backend, Backend):  # else the runtime fails later on a missing method
        raise TypeError(
            f"the backend factory of {parsed.scheme}:// returned {type(backend).__name__}, "
            "not a netabase.backends.Backend"
        )
    return backend
