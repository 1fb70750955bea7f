"""Secondary index declarations: `field`, and the `IndexInfo` each index of a model resolves to.

An index of fields ``(f1, f2, ...)`` keeps, in a keyspace of its own, one entry per record whose
key is ``enc(f1) + enc(f2) + ... + record key`` (`netabase._index_values`) and whose value is the
record key, written in the same atomic batch as the record. A single-field index on a collection
(``tuple[X, ...]`` / ``frozenset[X]``) keeps one entry per distinct item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import _keys, _layout
from ._errors import ModelDefinitionError, ValidationError
from ._index_values import INDEXABLE, IndexValueError, Shape, shape_of

if TYPE_CHECKING:
    from ._model import ModelInfo

FIELD_KEY = "netabase.field"


@attrs.frozen
class FieldDeclaration:
    """What `field` declared: an index on the field, a unique constraint."""

    index: bool
    unique: bool


def field(*, index: bool = False, unique: bool = False, **kwargs: Any) -> Any:
    """An attrs field (``kwargs`` go to `attrs.field`) that netabase indexes (``index=True``)
    or keeps unique across records (``unique=True``, as the model's ``unique=``)."""
    for option, value in (("index", index), ("unique", unique)):
        if not isinstance(value, bool):
            raise TypeError(f"netabase.field({option}=...) must be True or False, got {value!r}")
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[FIELD_KEY] = FieldDeclaration(index, unique)
    return attrs.field(metadata=metadata, **kwargs)


def declared_fields(cls: type) -> dict[str, FieldDeclaration]:
    """The `field` declarations of an attrs class, by field name."""
    return {
        each.name: each.metadata[FIELD_KEY]
        for each in attrs.fields(cls)
        if FIELD_KEY in each.metadata
    }


class IndexInfo:
    """One secondary index of a model: its fields, keyspace and how records make entries."""

    __slots__ = ("fields", "model", "name", "per_element", "shapes", "space")

    def __init__(self, model: ModelInfo[Any], fields: tuple[str, ...], shapes: tuple[Shape, ...]):
        self.model = model
        self.fields = fields
        self.shapes = shapes
        self.name = ".".join(fields)
        """The index's name: its fields joined by dots (``"customer.placed_at"``)."""
        self.space = _layout.index_space(model.name, self.name)
        self.per_element = len(fields) == 1 and shapes[0].per_element

    def __repr__(self) -> str:
        return f"<netabase index {self.model.name}({', '.join(self.fields)})>"

    def encode_value(self, position: int, value: Any) -> bytes:
        """One value of field ``position`` as it sorts in the index (a collection field's
        item); a value that does not fit raises `ValidationError` naming the field."""
        try:
            return self.shapes[position].encode(value)
        except IndexValueError as exc:
            raise ValidationError(
                self.model.name, f"cannot be indexed: {exc}", field=self.fields[position]
            ) from None

    def entries(self, record: Any, key: bytes) -> frozenset[bytes]:
        """The entry keys of ``record`` stored under ``key``; `ValidationError` naming the
        model, key and field when a value cannot be indexed or the entry would not fit a key."""
        try:
            if self.per_element:
                items = getattr(record, self.fields[0])
                encode = self.shapes[0].encode
                prefixes = {encode(item) for item in items}
            else:
                prefixes = {
                    b"".join(
                        shape.encode(getattr(record, name))
                        for name, shape in zip(self.fields, self.shapes, strict=True)
                    )
                }
        except IndexValueError as exc:
            raise self._refused(record, str(exc)) from None
        out = frozenset(prefix + key for prefix in prefixes)
        for entry in out:
            if len(entry) > _keys.MAX_KEY_SIZE:
                raise self._refused(
                    record,
                    f"its indexed values and key encode to {len(entry)} bytes, over the "
                    f"{_keys.MAX_KEY_SIZE} an index entry may take",
                )
        return out

    def _refused(self, record: Any, problem: str) -> ValidationError:
        for name, shape in zip(self.fields, self.shapes, strict=True):
            value = getattr(record, name)
            try:
                for item in value if shape.per_element else (value,):
                    shape.encode(item)
            except IndexValueError as exc:
                problem = f"cannot be indexed: {exc}"
                field = name
                break
        else:
            field = self.fields[-1]
        return ValidationError(
            self.model.name, problem, field=field, key=self.model.key_of(record), rule="index"
        )


def resolve(info: ModelInfo[Any], declared: Sequence[str | Sequence[str]]) -> tuple[IndexInfo, ...]:
    """The indexes of a model: each ``field(index=True)`` and each entry of ``indexes=``
    (a field name, or a sequence of names for a compound index), checked at definition."""
    wanted: list[tuple[str, ...]] = [
        (name,) for name, each in declared_fields(info.cls).items() if each.index
    ]
    if isinstance(declared, str):
        raise ModelDefinitionError(
            info.name, "indexes= takes a list of field names or tuples of them, not a str"
        )
    for entry in declared:
        fields = (entry,) if isinstance(entry, str) else tuple(entry)
        if not fields or not all(isinstance(name, str) for name in fields):
            raise ModelDefinitionError(
                info.name, f"indexes= entry {entry!r} must be a field name or a tuple of them"
            )
        wanted.append(fields)
    out: list[IndexInfo] = []
    seen: set[tuple[str, ...]] = set()
    for fields in wanted:
        if fields in seen:
            raise ModelDefinitionError(info.name, f"index {fields!r} is declared twice")
        seen.add(fields)
        out.append(_resolve_one(info, fields))
    return tuple(out)


def _resolve_one(info: ModelInfo[Any], fields: tuple[str, ...]) -> IndexInfo:
    if len(set(fields)) != len(fields):
        raise ModelDefinitionError(info.name, f"index {fields!r} names a field twice")
    if fields == (info.key_field,):
        raise ModelDefinitionError(
            info.name,
            "the key needs no index: records are kept in key order (use scan)",
            field=info.key_field,
        )
    shapes = []
    for name in fields:
        if name not in info.field_types or name not in info.input_fields:
            raise ModelDefinitionError(info.name, "an index names an unknown field", field=name)
        shape = shape_of(info.field_types[name])
        if shape is None:
            raise ModelDefinitionError(
                info.name,
                f"field type {info.field_types[name]!r} cannot be indexed; indexable: {INDEXABLE}"
                ", optional ones (X | None), fixed tuples of them, and tuple[X, ...] or "
                "frozenset[X] of them (indexed per item)",
                field=name,
            )
        if shape.per_element and len(fields) > 1:
            raise ModelDefinitionError(
                info.name,
                "a collection field is indexed per item, in an index of its own, not in a "
                "compound index",
                field=name,
            )
        shapes.append(shape)
    return IndexInfo(info, fields, tuple(shapes))


def unique_declared(info: ModelInfo[Any]) -> tuple[str, ...]:
    """The fields declared ``field(unique=True)``."""
    return tuple(name for name, each in declared_fields(info.cls).items() if each.unique)
