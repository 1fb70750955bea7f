"""Field type checkers, built once per model field at decoration time.

attrs does not check types on construction, so a store must: inserting a record whose field holds
the wrong type raises `ValidationError` naming the field instead of storing something that later
fails to decode. A checker returns ``None`` when the value fits, else a short description.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import threading
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

import attrs

Checker = Callable[[object], str | None]
_Seen = dict[type, tuple[Checker, list[bool]]]
"""Attrs classes met while building one checker -> (checker, [still building, recursive])."""

MAX_DEPTH = 100
"""Deepest nesting a field value may have (an ``Any`` value, or a class that contains itself):
far enough below Python's recursion limit that encoding and decoding it never hit that limit."""
_nesting = threading.local()

_SCALARS: dict[object, tuple[type, ...]] = {
    str: (str,),
    bytes: (bytes,),
    float: (float, int),
    datetime.datetime: (datetime.datetime,),
    datetime.date: (datetime.date,),
    datetime.time: (datetime.time,),
    uuid.UUID: (uuid.UUID,),
    decimal.Decimal: (decimal.Decimal,),
}


class UnsupportedType(TypeError):
    """A field type the codec cannot store."""


def _name(tp: object) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _wrong(expected: str, value: object) -> str:
    return f"expected {expected}, got {type(value).__name__} {_short(value)}"


def _short(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"
    return text if len(text) <= 40 else text[:37] + "..."


def _check_native(value: object, depth: int = 0) -> str | None:
    """A value msgpack can carry as is: used for ``Any`` fields."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 64:
            return "integer out of the 64-bit range msgpack can store"
        return None
    if depth > MAX_DEPTH:
        return f"nesting deeper than {MAX_DEPTH} levels"
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _check_native(item, depth + 1)
            if problem:
                return f"item {index}: {problem}"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                return f"dict key {_short(key)} is not str or int"
            problem = _check_native(item, depth + 1)
            if problem:
                return f"[{key!r}]: {problem}"
        return None
    return _wrong("a msgpack-native value (None, bool, int, float, str, bytes, list, dict)", value)


def _int_checker(value: object) -> str | None:
    if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
        if -(1 << 63) <= value < 1 << 64:
            return None
        return f"integer {_short(value)} is outside the 64-bit range msgpack can store"
    return _wrong("int", value)


def _bool_checker(value: object) -> str | None:
    return None if isinstance(value, bool) else _wrong("bool", value)


def _none_checker(value: object) -> str | None:
    return None if value is None else _wrong("None", value)


_EXACT = (str, bytes, bool, float, datetime.datetime, datetime.date, uuid.UUID, decimal.Decimal)


def exact_type(tp: object) -> type | None:
    """A type whose exact instances always pass ``tp``'s checker: the fast path skips the call.

    ``int`` qualifies although its checker also bounds the range: msgpack refuses an integer out
    of range at encode time, and the caller then runs the full checker to name the field.
    """
    if tp is int or tp in _EXACT:
        return typing.cast(type, tp)
    return None


def build_checker(tp: object, _seen: _Seen | None = None) -> Checker:
    """Return a checker for ``tp`` or raise `UnsupportedType` saying why it cannot be stored."""
    seen = {} if _seen is None else _seen
    if tp is Any or tp is object:
        return _check_native
    if tp is int:
        return _int_checker
    if tp is bool:
        return _bool_checker
    if tp is None or tp is type(None):
        return _none_checker
    if tp in _SCALARS:
        accepted = _SCALARS[tp]
        label = _name(tp)
        if tp is float:

            def check_float(value: object) -> str | None:
                ok = isinstance(value, accepted) and not isinstance(value, bool)
                return None if ok else _wrong(label, value)

            return check_float

        def check_scalar(value: object) -> str | None:
            return None if isinstance(value, accepted) else _wrong(label, value)

        return check_scalar
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        enum_type = tp

        def check_enum(value: object) -> str | None:
            return None if isinstance(value, enum_type) else _wrong(enum_type.__name__, value)

        return check_enum
    if isinstance(tp, type) and attrs.has(tp):
        return _attrs_checker(tp, seen)

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        options = [build_checker(arg, seen) for arg in args]
        label = " | ".join(_name(arg) for arg in args)

        def check_union(value: object) -> str | None:
            inner = None
            for option in options:
                problem = option(value)
                if problem is None:
                    return None
                if inner is None and not problem.startswith("expected "):
                    inner = problem  # the value has this option's type but fails inside it
            return inner or _wrong(label, value)

        return check_union
    if origin is typing.Literal:
        allowed = args

        def check_literal(value: object) -> str | None:
            for option in allowed:
                if type(value) is type(option) and value == option:
                    return None
            return f"expected one of {allowed!r}, got {_short(value)}"

        return check_literal
    if tp in (list, tuple, set, frozenset, dict):
        return build_checker(tp[Any] if tp is not dict else dict[str, Any], seen)
    if origin in (list, set, frozenset) or (origin is tuple and len(args) == 2 and args[1] is ...):
        container = typing.cast(type, origin)
        item = build_checker(args[0] if args else Any, seen)
        return _sequence_checker(container, item)
    if origin is tuple:
        return _fixed_tuple_checker([build_checker(arg, seen) for arg in args])
    if origin is dict:
        key_tp, value_tp = args if args else (str, Any)
        if key_tp not in (str, int):
            raise UnsupportedType(f"dict keys must be str or int, not {_name(key_tp)}")
        return _dict_checker(build_checker(key_tp, seen), build_checker(value_tp, seen))
    raise UnsupportedType(f"type {tp!r} is not supported by the netabase codec")


def _sequence_checker(container: type, item: Checker) -> Checker:
    label = container.__name__

    def check_sequence(value: object) -> str | None:
        if not isinstance(value, container):
            return _wrong(label, value)
        for index, element in enumerate(typing.cast("typing.Iterable[object]", value)):
            problem = item(element)
            if problem is not None:
                return f"item {index}: {problem}"
        return None

    return check_sequence


def _fixed_tuple_checker(items: list[Checker]) -> Checker:
    def check_tuple(value: object) -> str | None:
        if not isinstance(value, tuple) or len(value) != len(items):
            return _wrong(f"tuple of {len(items)} items", value)
        for index, (check, element) in enumerate(zip(items, value, strict=True)):
            problem = check(element)
            if problem is not None:
                return f"item {index}: {problem}"
        return None

    return check_tuple


def _dict_checker(key: Checker, item: Checker) -> Checker:
    def check_dict(value: object) -> str | None:
        if not isinstance(value, dict):
            return _wrong("dict", value)
        for k, v in value.items():
            problem = key(k) or item(v)
            if problem is not None:
                return f"[{k!r}]: {problem}"
        return None

    return check_dict


def _attrs_checker(cls: type, seen: _Seen) -> Checker:
    if cls in seen:
        checker, state = seen[cls]
        if state[0]:  # reached again while its own fields are being built: it contains itself
            state[1] = True
        return checker
    field_checks: list[tuple[str, Checker]] = []
    state = [True, False]  # [building, recursive]

    def check_fields(value: object) -> str | None:
        for name, check in field_checks:
            problem = check(getattr(value, name))
            if problem is not None:
                return f".{name}: {problem}"
        return None

    def check_attrs(value: object) -> str | None:
        if not isinstance(value, cls):
            return _wrong(cls.__name__, value)
        if not state[1]:
            return check_fields(value)
        # Only a class that contains itself can nest without bound: count its depth, per thread.
        depth: int = getattr(_nesting, "depth", 0)
        if depth >= MAX_DEPTH:
            return f"{cls.__name__} values nested deeper than {MAX_DEPTH} levels"
        _nesting.depth = depth + 1
        try:
            return check_fields(value)
        finally:
            _nesting.depth = depth

    seen[cls] = (check_attrs, state)
    hints = typing.get_type_hints(cls)
    for field in attrs.fields(cls):
        field_checks.append((field.name, build_checker(hints.get(field.name, Any), seen)))
    state[0] = False
    return check_attrs
