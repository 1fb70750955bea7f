"""Order-preserving encodings of indexed field values.

An index entry's key is its field values encoded here, one self-delimiting element each, then the
record's encoded key; bytewise order of entries is the order of the values (then of keys). The
codes extend the key encoding of `netabase._keys` (FoundationDB's tuple layer) and never reuse
one of its codes for another type:

``None`` 0x00 (first, before every value) · bytes 0x01 · str 0x02 · int 0x0B-0x1D · float 0x21 ·
False 0x26 · True 0x27 · UUID 0x30 · date 0x31 · naive datetime 0x32 · aware datetime 0x33.

A float is IEEE 754 with its sign bit flipped (and every bit of a negative one): ``-0.0`` is
stored as ``0.0`` (they are equal), NaN is refused (it is unordered: no range could find it).
An aware datetime is its UTC instant; a naive one is its wall-clock reading. The two kinds have
codes of their own and cannot be compared with each other (as in Python): a field mixing them is
refused where it is written (`netabase.actors` keeps a per-field marker of the kind in use).
"""

from __future__ import annotations

import datetime
import struct
import typing
import uuid
from collections.abc import Callable
from typing import Any, Final

from . import _keys

NONE: Final = 0x00
FLOAT: Final = 0x21
FALSE: Final = 0x26
TRUE: Final = 0x27
DATE: Final = 0x31
NAIVE_DATETIME: Final = 0x32
AWARE_DATETIME: Final = 0x33

_UnionType = type(int | None)

ValueEncoder = Callable[[Any], bytes]
"""Encodes one value of a field's declared type; raises `IndexValueError` saying why not."""


class IndexValueError(ValueError):
    """A value that has no place in an index (NaN, the wrong type, text that is not UTF-8)."""


_EPOCH = datetime.datetime(1, 1, 1)
_DAY_US = 86_400_000_000
_BIAS = 1 << 62
"""Added to an aware instant's microseconds, which go below zero near `datetime.min`."""


def encode_float(value: float) -> bytes:
    number = float(value)
    if number != number:
        raise IndexValueError("NaN cannot be indexed: it is not ordered with any number")
    if number == 0.0:
        number = 0.0
    bits: int = struct.unpack(">Q", struct.pack(">d", number))[0]
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return bytes((FLOAT,)) + bits.to_bytes(8, "big")


def encode_bool(value: bool) -> bytes:
    return bytes((TRUE if value else FALSE,))


def encode_date(value: datetime.date) -> bytes:
    if isinstance(value, datetime.datetime):
        raise IndexValueError("expected a date, got a datetime (they are never equal)")
    return bytes((DATE,)) + datetime.date.toordinal(value).to_bytes(4, "big")


def _micros(value: datetime.datetime) -> int:
    wall = value.replace(tzinfo=None) - _EPOCH
    return (wall.days * 86_400 + wall.seconds) * 1_000_000 + wall.microseconds


def encode_datetime(value: datetime.datetime) -> bytes:
    offset = value.utcoffset()
    if offset is None:
        return bytes((NAIVE_DATETIME,)) + _micros(value).to_bytes(8, "big")
    instant = _micros(value) - (offset.days * _DAY_US + offset.seconds * 1_000_000)
    instant -= offset.microseconds
    return bytes((AWARE_DATETIME,)) + (instant + _BIAS).to_bytes(8, "big")


def datetime_kind(value: object) -> str | None:
    """``"aware"`` or ``"naive"`` for a datetime, None for anything else."""
    if isinstance(value, datetime.datetime):
        return "naive" if value.utcoffset() is None else "aware"
    return None


def _typed(
    expected: type | tuple[type, ...], label: str, encode: ValueEncoder, refuse: type | None = None
) -> ValueEncoder:
    def encode_checked(value: Any) -> bytes:
        if not isinstance(value, expected) or (refuse is not None and isinstance(value, refuse)):
            raise IndexValueError(f"expected {label}, got {type(value).__name__} {value!r:.40}")
        try:
            return encode(value)
        except IndexValueError:
            raise
        except UnicodeEncodeError as exc:
            raise IndexValueError(f"not valid UTF-8 text ({exc.reason})") from None
        except (ValueError, OverflowError) as exc:
            raise IndexValueError(str(exc)) from None

    return encode_checked


def _optional(encode: ValueEncoder) -> ValueEncoder:
    def encode_optional(value: Any) -> bytes:
        return b"\x00" if value is None else encode(value)

    return encode_optional


def _fixed_tuple(encoders: list[ValueEncoder]) -> ValueEncoder:
    def encode_tuple(value: Any) -> bytes:
        if not isinstance(value, tuple) or len(value) != len(encoders):
            raise IndexValueError(f"expected a tuple of {len(encoders)} items, got {value!r:.40}")
        return b"".join(encode(item) for encode, item in zip(encoders, value, strict=True))

    return encode_tuple


_SCALAR_ENCODERS: dict[object, ValueEncoder] = {
    int: _typed(int, "int", _keys.encode_int, bool),
    str: _typed(str, "str", _keys.encode_str),
    bytes: _typed(bytes, "bytes", _keys.encode_bytes),
    uuid.UUID: _typed(uuid.UUID, "uuid.UUID", _keys.encode_uuid),
    float: _typed((float, int), "float", encode_float, bool),
    bool: _typed(bool, "bool", encode_bool),
    datetime.datetime: _typed(datetime.datetime, "datetime", encode_datetime),
    datetime.date: _typed(datetime.date, "date", encode_date),
}

INDEXABLE = "int, str, bytes, uuid.UUID, float, bool, datetime.date, datetime.datetime"


class Shape(typing.NamedTuple):
    """How a field is indexed: the encoder of one value, and whether the field is a collection
    indexed per element (``tuple[X, ...]`` or ``frozenset[X]``: one entry per distinct item)."""

    encode: ValueEncoder
    per_element: bool


def shape_of(tp: object) -> Shape | None:
    """The index shape of a declared field type, or None when it cannot be indexed."""
    encoder = _value_encoder(tp)
    if encoder is not None:
        return Shape(encoder, False)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    item: object = None
    if (origin is frozenset and len(args) == 1) or (
        origin is tuple and len(args) == 2 and args[1] is ...
    ):
        item = args[0]
    if item is None:
        return None
    encoder = _value_encoder(item)
    return None if encoder is None else Shape(encoder, True)


def _value_encoder(tp: object) -> ValueEncoder | None:
    if tp in _SCALAR_ENCODERS:
        return _SCALAR_ENCODERS[tp]
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is _UnionType:
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(args) == 2:
            inner = _value_encoder(others[0])
            return None if inner is None else _optional(inner)
        return None
    if origin is tuple and args and ... not in args:
        parts = [_value_encoder(arg) for arg in args]
        if all(part is not None for part in parts):
            return _fixed_tuple(typing.cast(list[ValueEncoder], parts))
    return None
