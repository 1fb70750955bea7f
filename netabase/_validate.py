"""Checks for the numeric and flag arguments of the public API, run in the caller's task.

Each raises `ValidationError` naming the model (or ``open`` / ``permissions``) and the parameter,
so no argument of the wrong kind or size ever reaches an actor or a backend.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

from ._errors import ValidationError

MAX_COUNT = (1 << 63) - 1
"""Largest count (limit, size) accepted: what fits a C ssize_t on 64-bit platforms."""
MAX_PAGE_SIZE = 1 << 20
"""Largest page a scan fetches in one request (each page is held in memory at once)."""
MAX_SECONDS = 1e9
"""Longest timeout or period accepted (about 31 years), so deadlines stay finite floats."""


def integer(
    where: str, name: str, value: object, *, minimum: int = 0, maximum: int = MAX_COUNT
) -> int:
    """``value`` as an int within ``[minimum, maximum]``; bools and floats are refused."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise ValidationError(
            where,
            f"must be an int between {minimum} and {maximum}, got {_shown(value)}",
            field=name,
        )
    number = operator.index(value)  # type: ignore[arg-type]
    if not minimum <= number <= maximum:
        raise ValidationError(
            where, f"must be between {minimum} and {maximum}, got {_shown(number)}", field=name
        )
    return number


def optional_integer(
    where: str, name: str, value: object, *, minimum: int = 0, maximum: int = MAX_COUNT
) -> int | None:
    """Like `integer`, with None passed through."""
    if value is None:
        return None
    return integer(where, name, value, minimum=minimum, maximum=maximum)


def page_size(where: str, value: object) -> int:
    """A scan or listing page size: an int from 1 to `MAX_PAGE_SIZE`."""
    return integer(where, "page_size", value, minimum=1, maximum=MAX_PAGE_SIZE)


def seconds(where: str, name: str, value: object) -> float:
    """A positive, finite duration in seconds (int or float, not bool), at most `MAX_SECONDS`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(
            where,
            f"must be a number of seconds, got {_shown(value)}",
            field=name,
        )
    number = float(value) if isinstance(value, float) or abs(value) <= MAX_SECONDS else math.inf
    if not 0 < number <= MAX_SECONDS:
        raise ValidationError(
            where,
            f"must be more than 0 and at most {MAX_SECONDS:g} seconds, got {_shown(value)}",
            field=name,
        )
    return number


def flag(where: str, name: str, value: object) -> bool:
    """``value`` if it is a bool (``reverse=1.5`` or ``block="no"`` are mistakes, not flags)."""
    if not isinstance(value, bool):
        raise ValidationError(where, f"must be True or False, got {_shown(value)}", field=name)
    return value


def collection(where: str, name: str, value: object) -> Iterable[Any]:
    """An iterable of items; a str or bytes (an iterable of characters) is refused."""
    if isinstance(value, str | bytes | bytearray | memoryview) or not isinstance(value, Iterable):
        raise ValidationError(
            where,
            f"must be an iterable such as a list, got {_shown(value)}",
            field=name,
        )
    return value


def _shown(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = "?"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
