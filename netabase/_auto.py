"""Generated keys: the `auto` field marker, its sentinel and sortable UUIDv7 strings.

A key field declared ``= netabase.auto()`` holds `AUTO` until ``insert`` fills it: an int from
the backend's per-model counter (`_key_blocks`), or a str UUIDv7 made here, in the caller.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Final

import attrs


class _Auto:
    """The value of a key field that ``insert`` has not filled yet."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "netabase.auto()"

    def __reduce__(self) -> str:
        return "AUTO"  # one sentinel per process, also after pickling


AUTO: Final = _Auto()
"""The default of every `auto` field; never stored."""


def auto() -> Any:
    """Declare the model's key field as generated on insert: ``id: int = netabase.auto()``
    (1, 2, 3 ... unique across processes) or ``id: str = netabase.auto()`` (a UUIDv7 string).

    It is an attrs default like any other: fields after it need defaults too (or declare the
    key last)."""
    return attrs.field(default=AUTO)


def is_auto(field: attrs.Attribute[Any]) -> bool:
    """Whether an attrs field was declared with `auto`."""
    return field.default is AUTO


_lock = threading.Lock()
_last = [0, 0]  # the last (milliseconds, counter) handed out in this process


def uuid7() -> str:
    """A UUIDv7 in its canonical text form (RFC 9562): 48 bits of Unix milliseconds, a 12-bit
    counter, 62 random bits. Strings from one process sort in the order they were made."""
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, counter = _last
        if millis <= last_millis:  # the same millisecond (or a clock step back): count on
            millis, counter = last_millis, counter + 1
            if counter > 0xFFF:
                millis, counter = millis + 1, 0
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x7FF  # leaves room to count
        _last[:] = [millis, counter]
    tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
