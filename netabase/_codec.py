"""Record codec: cattrs (un)structuring plus msgpack, behind a two-byte envelope.

The envelope is ``[FORMAT_VERSION, model schema version]``: a later change of either is detected
on read instead of silently misreading old bytes. Records of format 2 end with an 8-byte
big-endian stamp, the record's version, which the backend writes when it applies the put
(`encode` leaves `NO_STAMP` there); records of format 1 have none and read as version 1, as do
records of format 2 stored without a stamp.
Hooks are built once per model. Decoding is strict: a stored map with a field the class lacks,
or without one it has, is a `CorruptRecord`, never a record with the field dropped or
defaulted (except fields a recorded schema change added, see `RecordCodec.allow_missing`).
"""

from __future__ import annotations

import datetime
import decimal
import typing
import uuid
from collections.abc import Callable, Iterable, Set
from typing import Any, Generic, TypeVar

import attrs
import cattrs
import msgpack
from cattrs.gen import make_dict_structure_fn

from ._errors import CorruptRecord, SchemaMismatch

FORMAT_VERSION = 2
LEGACY_FORMAT = 1
"""Records written before versions: no stamp, read as version 1."""
STAMP_SIZE = 8
NO_STAMP = bytes(STAMP_SIZE)
"""The placeholder `encode` ends a record with; the backend replaces it when it stores it."""

T = TypeVar("T")


def _make_converter(*, stored: bool = True) -> cattrs.Converter:
    """The codec's converter; ``stored=False``: the one for input, where a nested value may
    leave out fields that have defaults (unknown fields are refused by both)."""
    converter = cattrs.Converter(
        detailed_validation=not stored,
        forbid_extra_keys=not stored,
        unstruct_collection_overrides={Set: list},
    )
    converter.register_unstructure_hook(datetime.datetime, lambda v: v.isoformat())
    converter.register_structure_hook(
        datetime.datetime, lambda v, _: datetime.datetime.fromisoformat(v)
    )
    converter.register_unstructure_hook(datetime.date, lambda v: v.isoformat())
    converter.register_structure_hook(datetime.date, lambda v, _: datetime.date.fromisoformat(v))
    converter.register_unstructure_hook(datetime.time, lambda v: v.isoformat())
    converter.register_structure_hook(datetime.time, lambda v, _: datetime.time.fromisoformat(v))
    converter.register_unstructure_hook(uuid.UUID, lambda v: v.bytes)
    converter.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(bytes=v))
    converter.register_unstructure_hook(decimal.Decimal, str)
    converter.register_structure_hook(decimal.Decimal, lambda v, _: decimal.Decimal(v))
    converter.register_structure_hook(bytes, _exactly(bytes, (bytes, bytearray, memoryview)))
    for kind, accepts in ((str, (str,)), (int, (int,)), (float, (int, float)), (bool, (bool,))):
        converter.register_structure_hook(kind, _exactly(kind, accepts))
    guard_collections(converter)
    converter.register_structure_hook_func(lambda t: t is object, lambda v, _: v)
    if stored:
        converter.register_structure_hook_factory(
            attrs.has, lambda cls: _strict_hook(cls, converter)
        )
    return converter


def _exactly(kind: type, accepts: tuple[type, ...]) -> Callable[[Any, Any], Any]:
    """A structure hook taking only values of the field's own type: never ``int(3.7)``,
    ``bool("false")`` or ``str(5)``, which would read (or import) a wrong value quietly."""

    def structure(value: Any, _: Any) -> Any:
        if type(value) is kind:
            return value
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, accepts):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r:.40}")
        return kind(value)

    return structure


_COLLECTIONS = (list, tuple, set, frozenset)


def guard_collections(converter: cattrs.Converter) -> None:
    """Make ``converter`` structure list, tuple and set fields only from a list, tuple or set:
    cattrs would iterate a str into its characters, or a map into its keys."""
    default = converter.get_structure_hook

    def is_collection(tp: Any) -> bool:
        return tp in _COLLECTIONS or typing.get_origin(tp) in _COLLECTIONS

    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        origin = typing.get_origin(tp) or tp
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not ...:
            items = [(default(arg), arg) for arg in args]

            def fixed(value: Any, _: Any) -> Any:
                if not isinstance(value, _COLLECTIONS) or len(value) != len(items):
                    raise TypeError(f"expected a sequence of {len(items)}, got {value!r:.40}")
                return tuple(hook(v, arg) for (hook, arg), v in zip(items, value, strict=True))

            return fixed
        arg = args[0] if args else Any
        hook = default(arg)

        def collection(value: Any, _: Any) -> Any:
            if not isinstance(value, _COLLECTIONS):
                raise TypeError(f"expected a {origin.__name__}, got {type(value).__name__}")
            return origin(hook(v, arg) for v in value)

        return collection

    converter.register_structure_hook_factory(is_collection, factory)


def stored_fields(cls: type) -> frozenset[str]:
    """The keys an encoded ``cls`` value has: its attrs fields that ``__init__`` takes."""
    return frozenset(field.name for field in attrs.fields(cls) if field.init)


def field_problem(
    name: str, data: object, fields: frozenset[str], may_lack: frozenset[str] = frozenset()
) -> str | None:
    """Why stored ``data`` is not a complete ``name`` map, or None when it is one."""
    if not isinstance(data, dict):
        return f"stored {type(data).__name__}, not a map of {name} fields"
    extra = sorted(map(str, data.keys() - fields))
    missing = sorted(fields - data.keys() - may_lack)
    problems = []
    if extra:
        problems.append(f"unknown field(s) {', '.join(extra)} not declared by {name}")
    if missing:
        problems.append(f"missing field(s) {', '.join(missing)} declared by {name}")
    return "; ".join(problems) or None


def _strict_hook(cls: type, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Structure a nested attrs value only from a map with exactly its fields."""
    structure: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, converter)
    fields = stored_fields(cls)
    name = cls.__name__

    def strict(data: Any, _: Any) -> Any:
        if type(data) is not dict or data.keys() != fields:
            raise ValueError(field_problem(name, data, fields))
        return structure(data, cls)

    return strict


def record_version(raw: bytes | None) -> int:
    """The version of a record as stored (0 when absent, 1 for a record of format 1)."""
    if raw is None:
        return 0
    if raw[:1] == bytes((FORMAT_VERSION,)) and len(raw) >= 2 + STAMP_SIZE:
        # A record put without a stamp (a raw backend write) keeps `NO_STAMP`: it is present,
        # so not version 0, which ``if_version=0`` takes for absent.
        return int.from_bytes(raw[-STAMP_SIZE:], "big") or 1
    return 1


CONVERTER = _make_converter()
INPUT_CONVERTER = _make_converter(stored=False)


def _map_length(data: bytes, at: int) -> int:
    """The entry count of the msgpack map header at ``data[at]`` (-1: no map header)."""
    head = data[at] if len(data) > at else 0
    if 0x80 <= head <= 0x8F:
        return head & 0x0F
    size = {0xDE: 2, 0xDF: 4}.get(head)
    return -1 if size is None else int.from_bytes(data[at + 1 : at + 1 + size], "big")


class RecordCodec(Generic[T]):
    """Encodes and decodes one model's records; hooks resolved once at construction."""

    __slots__ = (
        "_describe_key",
        "_fields",
        "_header",
        "_legacy_header",
        "_map_head",
        "_may_lack",
        "_structure",
        "_unstructure",
        "_users",
        "model_name",
        "version",
    )

    def __init__(
        self, cls: type[T], model_name: str, version: int, describe_key: Callable[[bytes], object]
    ) -> None:
        self.model_name = model_name
        self.version = version
        self._describe_key = describe_key
        self._header = bytes((FORMAT_VERSION, version))
        self._legacy_header = bytes((LEGACY_FORMAT, version))
        self._unstructure: Callable[[T], Any] = CONVERTER.get_unstructure_hook(cls)
        structure = make_dict_structure_fn(cls, CONVERTER)  # the field check is `decode`'s
        self._structure: Callable[[Any], T] = lambda data: structure(data, cls)
        self._fields = stored_fields(cls)
        self._map_head = msgpack.packb(dict.fromkeys(self._fields))[
            : 3 if len(self._fields) > 15 else 1
        ]
        self._users = 0
        """Open databases using this codec; they all share `_may_lack`."""
        self._may_lack: frozenset[str] = frozenset()

    def allow_missing(self, fields: Iterable[str]) -> frozenset[str]:
        """Let stored records lack ``fields`` (they take the default) while a database whose
        recorded schema changes added them is open; returns what `release_missing` takes.

        The allowance belongs to the model class, so every database open with it at once must
        need the same one: otherwise one would read the other's incomplete records silently,
        and `SchemaMismatch` refuses the open instead."""
        allowed = frozenset(fields) & self._fields
        if self._users and allowed != self._may_lack:
            shown = ", ".join(sorted(allowed ^ self._may_lack))
            raise SchemaMismatch(
                {
                    self.model_name: (
                        f"field(s) {shown} were added later in one of the databases open with "
                        f"this model and not in the other, so records lacking them cannot be "
                        f"told apart",
                    )
                },
                "close the other database first, or declare a separate model class for it",
            )
        self._users += 1
        self._may_lack = allowed
        return allowed

    def release_missing(self, allowed: frozenset[str]) -> None:
        """Undo one `allow_missing` (its database closed)."""
        self._users -= 1
        if not self._users:
            self._may_lack = frozenset()

    def encode(self, record: T) -> bytes:
        payload: bytes = msgpack.packb(self._unstructure(record), use_bin_type=True)
        return self._header + payload + NO_STAMP

    def decode(self, data: bytes, key: bytes, may_lack: frozenset[str] | None = None) -> T:
        """Decode the bytes stored under encoded ``key``; failures raise `CorruptRecord`.
        ``may_lack``: the fields it may lack (default: those `allow_missing` allowed)."""
        head = data[:2]
        if head == self._header and len(data) >= 2 + STAMP_SIZE:
            body = data[2:-STAMP_SIZE]
        elif head == self._legacy_header:
            body = data[2:]
        else:
            raise CorruptRecord(self.model_name, self._key(key), self._describe_header(data))
        try:
            fields = msgpack.unpackb(body, raw=False, strict_map_key=False)
            if (
                type(fields) is dict
                and fields.keys() == self._fields
                and data.startswith(self._map_head, 2)  # as many entries as keys: no duplicate
            ):
                return self._structure(fields)
            lack = self._may_lack if may_lack is None else may_lack
            problem = field_problem(self.model_name, fields, self._fields, lack)
            if problem is None and _map_length(body, 0) != len(fields):
                problem = f"a field is stored twice ({_map_length(body, 0)} entries)"
            if problem is None:
                return self._structure(fields)
        except (RecursionError, msgpack.StackError):
            raise CorruptRecord(
                self.model_name, self._key(key), "nested too deeply to decode"
            ) from None
        except Exception as exc:
            raise CorruptRecord(
                self.model_name, self._key(key), f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from exc
        raise CorruptRecord(self.model_name, self._key(key), problem)

    def _key(self, key: bytes) -> object:
        """The key as the user wrote it, for the error message (the raw bytes if undecodable)."""
        try:
            return self._describe_key(key)
        except Exception:
            return key

    def _describe_header(self, data: bytes) -> str:
        if len(data) < 2:
            return f"{len(data)} bytes is shorter than the 2-byte envelope"
        if data[0] not in (LEGACY_FORMAT, FORMAT_VERSION):
            return (
                f"envelope format {data[0]} is not a supported format "
                f"({LEGACY_FORMAT} or {FORMAT_VERSION})"
            )
        if data[0] == FORMAT_VERSION and data[1] == self.version:
            return (
                f"{len(data)} bytes is too short for the envelope and the {STAMP_SIZE}-byte stamp"
            )
        return (
            f"stored with schema version {data[1]}, but the model declares version "
            f"{self.version}; migrate the data or declare the matching version"
        )
