"""Stored schemas: what each model looked like when its records were written.

Every open compares the declared models with the descriptions kept in the ``~schema`` space (one
per model, written at first open). A compatible change (a new model, a new field with a default,
a field gaining a default, a unique constraint dropped) is recorded; anything else raises
`SchemaMismatch` listing each difference, so records are never read with fields silently dropped
or defaulted. A database written before schemas were stored adopts the declared ones, once its
first record of each model is seen to decode.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import types
import typing
import uuid
from collections.abc import Mapping, Set
from typing import Any

import attrs

from ._errors import CorruptRecord, SchemaMismatch, WriteConflict
from ._layout import SCHEMA_SPACE
from ._model import ModelInfo
from .backends import Backend, Expect, Put, WriteBatch

SPACE = SCHEMA_SPACE
FORMAT = 1
_ATTEMPTS = 10

Description = dict[str, Any]

RESOLUTION = (
    "netabase has no schema migrations yet: declare the models as stored (each line says how), "
    "or export the records with the stored models (netabase export URL MODEL --models ...) and "
    "import them into a new database with the new ones (netabase import)."
)


def describe(info: ModelInfo[Any]) -> Description:
    """The stored form of a model: fields with types and defaults, key, links, parent, version."""
    ambiguous: frozenset[str] = frozenset()
    while True:  # again while classes of one name were found: they are named with their module
        naming = _Naming(ambiguous)
        description = _describe(info, naming)
        shared = frozenset(name for name, classes in naming.seen.items() if len(classes) > 1)
        if shared <= ambiguous:
            return description
        ambiguous |= shared


class _Naming:
    """Names for the classes met in one model: the qualified name, with the module when two
    of them share it."""

    def __init__(self, ambiguous: frozenset[str]) -> None:
        self.ambiguous = ambiguous
        self.seen: dict[str, set[type]] = {}

    def name(self, tp: type) -> str:
        self.seen.setdefault(tp.__qualname__, set()).add(tp)
        if tp in _QUALIFIED or tp.__qualname__ in self.ambiguous:
            return f"{tp.__module__}.{tp.__qualname__}"
        return tp.__qualname__


def _describe(info: ModelInfo[Any], naming: _Naming) -> Description:
    nested: dict[str, Any] = {}
    fields = {
        field.name: {
            "type": type_name(info.field_types[field.name], nested, naming),
            "default": field.default is not attrs.NOTHING,
        }
        for field in attrs.fields(typing.cast(Any, info.cls))
        if field.init
    }
    return {
        "format": FORMAT,
        "version": info.version,
        "key": {"field": info.key_field, "type": type_name(info.key_type, nested, naming)},
        "fields": fields,
        "links": {
            link.field: {"target": link.target.name, "many": link.many, "unique": link.unique}
            for link in info.links
        },
        "linked_defaults": sorted(
            field.name
            for field in attrs.fields(typing.cast(Any, info.cls))
            if field.name in {link.field for link in info.links} and _links_by_default(field)
        ),
        "parent": info.parent.field if info.parent is not None else None,
        "unique": sorted(info.unique_fields),
        "types": nested,
        "defaults": {
            field.name: _default_text(field.default)
            for field in attrs.fields(typing.cast(Any, info.cls))
            if field.init and field.default is not attrs.NOTHING
        },
    }


def _default_text(default: Any) -> str:
    """A field's default as text that compares equal across processes (sets sorted)."""
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return f"<factory {getattr(default.factory, '__qualname__', '?')} taking self>"
        default = default.factory()
    if isinstance(default, set | frozenset):
        return f"{type(default).__name__}({sorted(map(repr, default))})"
    return repr(default)


def _links_by_default(field: Any) -> bool:
    """Whether a link field's default names a record (not None, not an empty collection)."""
    default = field.default
    if default is attrs.NOTHING:
        return False
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return True
        default = default.factory()
    return default is not None and default != () and default != frozenset()


_QUALIFIED = {datetime.datetime, datetime.date, datetime.time, uuid.UUID, decimal.Decimal}
_BARE = {list: list[Any], tuple: tuple[Any, ...], set: set[Any], frozenset: frozenset[Any]}


def type_name(tp: object, nested: dict[str, Any], naming: _Naming | None = None) -> str:
    """A canonical name for a field type (``Optional[X]`` and ``X | None`` alike); attrs classes
    and enums met on the way are described in ``nested``."""
    naming = naming or _Naming(frozenset())
    if tp is None or tp is type(None):
        return "None"
    if tp is Any or tp is object:
        return "Any"
    if tp is dict:
        tp = dict[str, Any]
    tp = _BARE.get(tp, tp)  # type: ignore[call-overload]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        names = {type_name(arg, nested, naming) for arg in args}
        return " | ".join(sorted(names, key=lambda name: (name == "None", name)))
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None:
        inner = ", ".join("..." if arg is ... else type_name(arg, nested, naming) for arg in args)
        return f"{getattr(origin, '__qualname__', repr(origin))}[{inner}]"
    if not isinstance(tp, type):
        return repr(tp)
    name = naming.name(tp)
    if name in nested:
        return name
    if issubclass(tp, enum.Enum):
        nested[name] = {"enum": [repr(member.value) for member in tp]}
    elif attrs.has(tp):
        nested[name] = {}  # placed first: a class that contains itself ends here
        hints = typing.get_type_hints(tp)
        nested[name] = {
            "fields": {
                field.name: {
                    "type": type_name(hints.get(field.name, Any), nested, naming),
                    "default": field.default is not attrs.NOTHING,
                }
                for field in attrs.fields(tp)
                if field.init
            }
        }
    return name


def compare(stored: Description, declared: Description) -> tuple[list[str], Description]:
    """Each incompatible difference (with its resolution), and the description to store: the
    declared one, with every field records may lack marked ``added``."""
    found: list[str] = []
    merged = json.loads(json.dumps(declared))
    if stored.get("format") != FORMAT:
        return [f"stored schema format {stored.get('format')!r} is not {FORMAT}"], merged
    if stored["version"] != declared["version"]:
        found.append(
            f"version: stored {stored['version']}, declared {declared['version']} "
            f"(declare version={stored['version']})"
        )
    old_key, new_key = stored["key"], declared["key"]
    if old_key != new_key:
        found.append(
            f"key: stored {old_key['field']}: {old_key['type']}, declared "
            f"{new_key['field']}: {new_key['type']} "
            f"(declare key={old_key['field']!r} with type {old_key['type']})"
        )
    old_fields: dict[str, Any] = stored["fields"]
    new_fields: dict[str, Any] = merged["fields"]
    for name, old in old_fields.items():
        new = new_fields.get(name)
        if new is None:
            assert old is not None
            found.append(
                f"field {name!r} is stored but not declared (declare {name}: {old['type']} again)"
            )
            continue
        if old.get("added"):
            new["added"] = True
        if old["type"] != new["type"]:
            found.append(
                f"field {name!r} changed type: stored {old['type']}, declared {new['type']} "
                f"(declare {name}: {old['type']})"
            )
        elif new.get("added") and not new["default"]:
            found.append(
                f"field {name!r} lost its default, but records stored before it was added lack "
                "it (give it a default again)"
            )
        elif new.get("added") and name in stored.get("defaults", {}):
            was, now = stored["defaults"][name], merged["defaults"][name]
            if was != now:
                found.append(
                    f"field {name!r} was added with default {was}, which records stored before "
                    f"it was added read as its value; declared {now} (declare {name} = {was})"
                )
    for name, new in new_fields.items():
        if name in old_fields:
            continue
        if new["default"]:
            new["added"] = True
        else:
            found.append(
                f"field {name!r} is new and has no default, but stored records lack it "
                f"(give {name} a default)"
            )
    both = old_fields.keys() & new_fields.keys()
    found.extend(_link_differences(stored["links"], declared["links"], both))
    if stored["parent"] != declared["parent"]:
        found.append(
            f"parent: stored {stored['parent']!r}, declared {declared['parent']!r} "
            f"(declare parent={stored['parent']!r})"
        )
    for name in declared["linked_defaults"]:
        if name not in old_fields:
            found.append(
                f"new link field {name!r} defaults to a key, but stored records taking that "
                "default were never indexed or checked (give it no link by default: None or ())"
            )
    for name in sorted(set(declared["unique"]) - set(stored["unique"])):
        found.append(
            f"field {name!r} is newly unique, but stored records were never checked for "
            f"duplicates (drop it from unique=)"
        )
    found.extend(_type_differences(stored["types"], declared["types"]))
    return found, merged


def _link_differences(
    stored: Mapping[str, Any], declared: Mapping[str, Any], kept: Set[str]
) -> list[str]:
    found = []
    for name in sorted(set(stored) | set(declared)):
        old, new = stored.get(name), declared.get(name)
        if old == new or name not in kept:
            continue  # unchanged; a new field (its records hold the default); a removed one
        assert old is not None or new is not None
        if new is None:
            assert old is not None
            found.append(
                f"field {name!r} is no longer a link to {old['target']}, but the link index "
                f"still holds its entries (declare it netabase.link({old['target']}) again)"
            )
        elif old is None:
            found.append(
                f"field {name!r} became a link to {new['target']}, but stored records were never "
                "indexed or checked (declare it a plain field again)"
            )
        elif old["target"] != new["target"]:
            found.append(
                f"link {name!r} retargeted: stored {old['target']}, declared {new['target']} "
                f"(link it to {old['target']} again)"
            )
        elif new["unique"] and not old["unique"]:
            found.append(
                f"link {name!r} became unique, but stored records were never checked for "
                "duplicates (declare it with unique=False)"
            )
    return found


def _type_differences(stored: Mapping[str, Any], declared: Mapping[str, Any]) -> list[str]:
    found = []
    for name in sorted(set(stored) & set(declared)):
        old, new = stored[name], declared[name]
        if "enum" in old and "enum" in new:
            gone = [value for value in old["enum"] if value not in new["enum"]]
            if gone:
                found.append(
                    f"enum {name} lost stored value(s) {', '.join(gone)} (declare them again)"
                )
            continue
        if old != new:  # fields changed, or an enum became an attrs class or the reverse
            found.append(
                f"nested type {name} changed: stored {_signature(old)}, declared "
                f"{_signature(new)} (declare {name} as stored)"
            )
    return found


def _signature(description: Mapping[str, Any]) -> str:
    if "enum" in description:
        return f"enum of {', '.join(description['enum'])}"
    fields = description.get("fields", {})
    parts = [f"{n}: {f['type']}{' = ...' if f['default'] else ''}" for n, f in fields.items()]
    return "fields (" + ", ".join(parts) + ")"


async def reconcile(
    backend: Backend, models: Mapping[str, ModelInfo[Any]]
) -> dict[str, frozenset[str]]:
    """Compare the declared models with the stored schemas; record compatible changes, raise
    `SchemaMismatch` on any other. Concurrent openers settle through conditional writes.
    Returns, per model, the fields its stored records may lack (added after they were written)."""
    names = sorted(models)
    keys = [name.encode() for name in names]
    declared = {name: describe(models[name]) for name in names}
    for _ in range(_ATTEMPTS):
        _, raw = await backend.read(SPACE, keys)
        differences: dict[str, tuple[str, ...]] = {}
        writes: list[tuple[bytes, bytes | None, bytes]] = []
        merged_all: dict[str, Description] = {}
        for name, key, value in zip(names, keys, raw, strict=True):
            if value is None:
                problem, merged = await _adopted(backend, models[name], declared[name])
                if problem is not None:
                    differences[name] = (problem,)
            else:
                found, merged = _compare_stored(name, value, declared[name])
                if found:
                    differences[name] = tuple(found)
            merged_all[name] = merged
            encoded = _encode(merged)
            if encoded != value:
                writes.append((key, value, encoded))
        if differences:
            raise SchemaMismatch(differences, RESOLUTION)
        if writes:
            batches = [
                WriteBatch((Put(SPACE, key, new),), (Expect(SPACE, key, old),))
                for key, old, new in writes
            ]
            result = await backend.apply(batches)
            if any(failed is not None for failed in result.failed):
                continue  # another opener wrote first: compare with what it stored
        return {
            name: frozenset(
                field for field, entry in merged["fields"].items() if entry.get("added")
            )
            for name, merged in merged_all.items()
        }
    raise WriteConflict(SPACE, _ATTEMPTS)


async def _adopted(
    backend: Backend, info: ModelInfo[Any], declared: Description
) -> tuple[str | None, Description]:
    """For a model without a stored schema: why its first stored record does not decode, and
    the description to store. Records written before schemas were stored were read with a
    missing field taking its default, so each field with a default may be missing from them."""
    first = await backend.scan(info.space, limit=1)
    if not first:
        return None, declared
    merged = json.loads(json.dumps(declared))
    defaulted = [name for name, entry in merged["fields"].items() if entry["default"]]
    for name in defaulted:
        merged["fields"][name]["added"] = True
    key, value = first[0]
    try:
        info.codec.decode(value, key, may_lack=frozenset(defaulted))
    except CorruptRecord as exc:
        problem = (
            f"no stored schema, and stored records do not match the declaration: {exc.problem} "
            f"(open it with the models that wrote it)"
        )
        return problem, merged
    return None, merged


def _compare_stored(
    name: str, value: bytes, declared: Description
) -> tuple[list[str], Description]:
    """`compare` with the stored bytes; bytes that are no schema raise `CorruptRecord`."""
    try:
        stored = json.loads(value)
        if not isinstance(stored, dict):
            raise TypeError(f"a JSON {type(stored).__name__}, not an object")
        return compare(stored, declared)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptRecord(SPACE, name, f"unreadable stored schema: {exc!r}") from None


def _encode(description: Description) -> bytes:
    return json.dumps(description, sort_keys=True, separators=(",", ":")).encode()
