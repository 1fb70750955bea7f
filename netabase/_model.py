"""Model declaration: the `model` decorator, `link` fields and the per-model descriptor.

Everything a store needs per model (field checkers, key encoder, codec, link table) is computed
here once, when the class is decorated, and kept on `ModelInfo`; the hot path only reads it.
"""

from __future__ import annotations

import inspect
import operator
import typing
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, NoReturn, TypeVar

import attrs
import cattrs

from . import _keys, _layout
from ._auto import AUTO, is_auto
from ._codec import INPUT_CONVERTER, RecordCodec
from ._errors import (
    CorruptRecord,
    KeyTooLarge,
    ModelDefinitionError,
    NetabaseError,
    ValidationError,
)
from ._indexes import IndexInfo, resolve, unique_declared
from ._roles import Rule
from ._types import Checker, UnsupportedType, build_checker, exact_type

T = TypeVar("T")
OnDelete = Literal["restrict", "cascade", "set_null"]
_ON_DELETE = ("restrict", "cascade", "set_null")
_LINK_KEY = "netabase.link"
_ATTR = "__netabase__"


@attrs.frozen
class _LinkDeclaration:
    target: type | Literal["self"]
    on_delete: OnDelete
    unique: bool
    required: bool


def link(
    target: type | Literal["self"],
    *,
    on_delete: OnDelete = "restrict",
    unique: bool = False,
    required: bool = True,
    default: Any = attrs.NOTHING,
) -> Any:
    """Declare a field that holds the key (or a tuple/frozenset of keys) of ``target`` records.

    ``target`` is a netabase model class, or ``"self"`` for a link to the same model. A link that
    is not ``required`` holds ``None`` when unset and defaults to it.
    """
    if default is attrs.NOTHING and not required:
        default = None
    declaration = _LinkDeclaration(target, on_delete, unique, required)
    return attrs.field(default=default, metadata={_LINK_KEY: declaration})


@attrs.define(eq=False)
class LinkInfo:
    """One resolved link field of a model."""

    field: str
    source: ModelInfo[Any]
    target: ModelInfo[Any]
    many: bool
    container: type | None
    on_delete: OnDelete
    unique: bool
    required: bool

    @property
    def name(self) -> str:
        return f"{self.source.name}.{self.field}"

    def keys_of(self, record: object) -> tuple[Any, ...]:
        """The target keys a record names through this link (empty when unset)."""
        value = getattr(record, self.field)
        if value is None:
            return ()
        if self.many:
            return tuple(dict.fromkeys(value))
        return (value,)

    def encoded_keys_of(self, record: object) -> tuple[bytes, ...]:
        """The encoded target keys a record names; `KeyTooLarge` names the source field."""
        encode = self.target.encode_key_raw
        out = []
        for key in self.keys_of(record):
            encoded = encode(key)
            if len(encoded) > _keys.MAX_KEY_SIZE:
                raise KeyTooLarge(self.source.name, key, len(encoded), _keys.MAX_KEY_SIZE)
            out.append(encoded)
        return tuple(out)

    def without(self, record: Any, target_key: Any) -> Any:
        """``record`` with ``target_key`` unlinked from this field (set to None, or dropped)."""
        value = getattr(record, self.field)
        if self.many:
            assert self.container is not None
            kept = self.container(k for k in value if k != target_key)
            return attrs.evolve(record, **{self.field: kept})
        return attrs.evolve(record, **{self.field: None})


class ModelInfo(Generic[T]):
    """The descriptor a decorated class carries: how to check, key, encode and link its records."""

    def __init__(
        self,
        cls: type[T],
        name: str,
        key_field: str,
        key_type: object,
        version: int,
        field_checks: tuple[tuple[str, Checker], ...],
        hints: dict[str, Any],
    ) -> None:
        self.cls = cls
        self.name = name
        self.key_field = key_field
        self.key_type = key_type
        self.version = version
        self.field_checks = field_checks
        self.field_types = hints
        self.key_check = dict(field_checks)[key_field]
        self._fast_checks = tuple(
            (name, exact_type(hints[name]), checker) for name, checker in field_checks
        )
        names = [name for name, _ in field_checks]
        getter = operator.attrgetter(*names)
        self._values_of: Callable[[Any], tuple[Any, ...]] = (
            getter if len(names) > 1 else lambda record: (getter(record),)
        )
        self.key_of: Callable[[T], Any] = operator.attrgetter(key_field)
        self._key_init: str = attrs.fields_dict(typing.cast(Any, cls))[key_field].alias or key_field
        self.encode_key_raw = _keys.encoder_for(key_type)
        self.decode_key = _keys.decoder_for(key_type)
        self.codec: RecordCodec[T] = RecordCodec(cls, name, version, self.decode_key)
        fields = [field for field in attrs.fields(typing.cast(Any, cls)) if field.init]
        self.input_fields = tuple(field.name for field in fields)
        """The fields a record is built from (and encoded with)."""
        self.required_fields = tuple(
            field.name for field in fields if field.default is attrs.NOTHING
        )
        self.frozen = _is_frozen(cls)
        self.attrs_validators = tuple(
            field for field in attrs.fields(typing.cast(Any, cls)) if field.validator is not None
        )
        self.validators: tuple[Callable[[T], object], ...] = ()
        self.unique_fields: tuple[str, ...] = ()
        self.indexes: tuple[IndexInfo, ...] = ()
        """Secondary indexes (`netabase._indexes`), declared by ``field(index=True)`` and
        ``indexes=``."""
        self.rules: tuple[Rule, ...] = ()
        self.links: tuple[LinkInfo, ...] = ()
        self.parent: LinkInfo | None = None
        self.auto: type | None = None
        """The key type (int or str) when the key is declared ``= netabase.auto()``."""

    @property
    def space(self) -> str:
        """The backend keyspace holding this model's records."""
        return _layout.record_space(self.name)

    @property
    def ref_space(self) -> str:
        """The keyspace of the reverse index of links that point at this model."""
        return _layout.ref_space(self.name)

    def __repr__(self) -> str:
        return f"<netabase model {self.name} key={self.key_field}>"

    def with_key(self, record: T, key: object) -> T:
        """``record`` with ``key`` in its key field (given by init name, ``id`` for ``_id``)."""
        return attrs.evolve(record, **{self._key_init: key})  # type: ignore[misc]

    def encode_key(self, key: object) -> bytes:
        """Check and encode a key given by a caller; raise a `ValidationError` naming the model."""
        problem = self.key_check(key)
        if problem is not None:
            if key is AUTO:
                problem = _UNFILLED
            raise ValidationError(self.name, f"bad key: {problem}", field=self.key_field)
        encoded = self._encode_key_text(key)
        if len(encoded) > _keys.MAX_KEY_SIZE:
            raise KeyTooLarge(self.name, key, len(encoded), _keys.MAX_KEY_SIZE)
        return encoded

    def _encode_key_text(self, key: object) -> bytes:
        try:
            return self.encode_key_raw(key)
        except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 form
            raise ValidationError(
                self.name,
                f"bad key {key!r}: not valid UTF-8 text ({exc.reason})",
                field=self.key_field,
            ) from None
        except ValueError as exc:  # an int too long for its length byte
            raise ValidationError(self.name, f"bad key: {exc}", field=self.key_field) from None

    def check(self, record: object) -> None:
        """Raise `ValidationError` naming the field when ``record`` does not fit the model."""
        if not isinstance(record, self.cls):
            raise ValidationError(
                self.name, f"expected a {self.name} record, got {type(record).__name__}"
            )
        try:
            for (field, fast, checker), value in zip(
                self._fast_checks, self._values_of(record), strict=True
            ):
                if type(value) is fast:
                    continue
                problem = checker(value)
                if problem is not None:
                    self._invalid(record, field, problem)
        except RecursionError:  # nesting is bounded, but the caller's own stack may be deep
            raise ValidationError(
                self.name,
                "record nested too deeply to check",
                key=getattr(record, self.key_field, None),
            ) from None
        if self.attrs_validators or self.validators:
            self._check_rules(record)

    def structure(self, data: object, converter: cattrs.Converter | None = None) -> T:
        """Build a record from a map of field values (user input, e.g. a JSON object).

        An unknown field, a missing field without a default, or a value ``converter`` (default:
        the codec's own, for msgpack-native values) cannot structure raises `ValidationError`
        naming the model, key and field.
        """
        if not isinstance(data, dict):
            raise ValidationError(
                self.name, f"expected a map of {self.name} fields, got {type(data).__name__}"
            )
        key = data.get(self.key_field)
        for field in data:
            if field not in self.input_fields:
                raise ValidationError(
                    self.name,
                    f"unknown field {field!r} ({self.name} has: {', '.join(self.input_fields)})",
                    field=str(field),
                    key=key,
                )
        for field in self.required_fields:
            if field not in data:
                raise ValidationError(self.name, f"missing field {field!r}", field=field, key=key)
        try:
            record: T = (converter or INPUT_CONVERTER).structure(data, self.cls)
        except RecursionError:
            raise ValidationError(self.name, "nested too deeply", key=key) from None
        except Exception as exc:
            try:
                problems = _structure_problems(exc)
            except RecursionError:  # cattrs wrapped one per level
                raise ValidationError(self.name, "nested too deeply", key=key) from None
            raise ValidationError(
                self.name,
                "; ".join(f"{f}: {p}" if f else p for f, p in problems),
                field=problems[0][0] or None,
                key=key,
            ) from exc
        return record

    def _check_rules(self, record: Any) -> None:
        """Run the attrs field validators and the model's record validators."""
        key = getattr(record, self.key_field, None)
        for field in self.attrs_validators:
            try:
                field.validator(record, field, getattr(record, field.name))
            except Exception as exc:
                raise ValidationError(
                    self.name,
                    _reason(exc),
                    field=field.name,
                    key=key,
                    rule=_rule_name(field.validator),
                ) from exc
        for validator in self.validators:
            try:
                verdict = validator(record)
            except Exception as exc:
                raise ValidationError(
                    self.name, _reason(exc), key=key, rule=_rule_name(validator)
                ) from exc
            if verdict is False or isinstance(verdict, str):
                problem = verdict or "the record breaks this rule"
                raise ValidationError(self.name, problem, key=key, rule=_rule_name(validator))

    def encode_unique(self, record: T) -> tuple[bytes, ...]:
        """The encoded values of the model's unique fields (claims in the store)."""
        out = []
        for field in self.unique_fields:
            value = getattr(record, field)
            try:
                if isinstance(value, tuple):
                    encoded = _keys.encode_tuple(value)
                else:
                    encoded = _keys.encode_element(value)
            except UnicodeEncodeError as exc:
                raise ValidationError(
                    self.name,
                    f"value {value!r} is not valid UTF-8 text ({exc.reason})",
                    field=field,
                    key=self.key_of(record),
                ) from None
            except ValueError as exc:  # an int too long for its length byte
                raise ValidationError(
                    self.name, str(exc), field=field, key=self.key_of(record)
                ) from None
            if len(encoded) > _keys.MAX_KEY_SIZE:
                raise ValidationError(
                    self.name,
                    f"value encodes to {len(encoded)} bytes, over the "
                    f"{_keys.MAX_KEY_SIZE}-byte limit of unique fields",
                    field=field,
                    key=self.key_of(record),
                    rule="unique",
                )
            out.append(encoded)
        return tuple(out)

    def _invalid(self, record: object, field: str, problem: str) -> NoReturn:
        key = getattr(record, self.key_field, None)
        if getattr(record, field, None) is AUTO:
            raise ValidationError(self.name, _UNFILLED, field=field)
        if len(problem) > 300:  # a long path into nested values: keep where it starts and ends
            problem = f"{problem[:100]} ... {problem[-180:]}"
        raise ValidationError(self.name, problem, field=field, key=key)

    def _check_thoroughly(self, record: object, cause: Exception) -> NoReturn:
        """Name the field behind an encode failure the fast checks let through."""
        for field, checker in self.field_checks:
            problem = checker(getattr(record, field))
            if problem is not None:
                self._invalid(record, field, problem)
        raise ValidationError(
            self.name, f"cannot encode record: {cause}", key=getattr(record, self.key_field, None)
        ) from cause

    def encode_links(self, record: T) -> tuple[tuple[bytes, ...], ...]:
        """Per link field, the encoded target keys ``record`` names."""
        return tuple(link.encoded_keys_of(record) for link in self.links)

    def decode_or_error(self, key: bytes, raw: bytes) -> T | CorruptRecord:
        """The record stored as ``raw`` under ``key``, or the `CorruptRecord` saying why it
        does not decode (returned, so one bad record fails only the caller who asked for it)."""
        try:
            return self.codec.decode(raw, key)
        except CorruptRecord as exc:
            return exc

    def stored_links(self, record: T | None) -> tuple[tuple[bytes, ...], ...] | None:
        """`encode_links` of a stored record; None when there is none, or when its links no
        longer encode (its index entries are then stale and cleaned up when met)."""
        if record is None:
            return None
        try:
            return self.encode_links(record)
        except NetabaseError:
            return None

    def encode_record(self, record: T) -> tuple[bytes, bytes]:
        """Check a record and return its encoded key and value."""
        self.check(record)
        if self.unique_fields:
            self.encode_unique(record)  # oversized unique values fail here, in the caller
        key = self.key_of(record)
        encoded_key = self._encode_key_text(key)
        if len(encoded_key) > _keys.MAX_KEY_SIZE:
            raise KeyTooLarge(self.name, key, len(encoded_key), _keys.MAX_KEY_SIZE)
        try:
            return encoded_key, self.codec.encode(record)
        except (OverflowError, TypeError, ValueError, RecursionError) as exc:
            self._check_thoroughly(record, exc)


_UNFILLED = (
    "holds netabase.auto(), a key not generated yet: insert / insert_many fill it and return "
    "the stored record; use that record's key"
)


def model(
    *,
    key: str,
    parent: str | None = None,
    name: str | None = None,
    version: int = 1,
    unique: Sequence[str] = (),
    indexes: Sequence[str | Sequence[str]] = (),
    validators: Sequence[Callable[[Any], object]] = (),
    rules: Sequence[Any] = (),
) -> Callable[[type[T]], type[T]]:
    """Make an attrs class a netabase model keyed by its field ``key``.

    ``parent`` names a link field whose target is this record's parent in the permission
    hierarchy. ``name`` (default: the class name) names the keyspace; ``version`` (1-255) is
    written with every record and in the stored schema, which every `open` compares with the
    declaration (`SchemaMismatch` on an incompatible change).

    ``unique`` names fields no two records may share (enforced atomically with each write, on
    every backend); a field declared ``netabase.field(unique=True)`` is unique too.
    ``indexes`` adds secondary indexes (a field name, or a tuple of names for a compound index,
    in order) to those declared by ``netabase.field(index=True)``. In this release they are
    declared and checked only: writes do not maintain them yet and no query reads them.
    ``validators`` are record-level rules called with the record on every
    write: raising, returning False or returning a message refuses it with `ValidationError`
    (attrs field validators are run too). ``rules`` are permission rules (`allow`/`require`)
    naming conditions registered with `condition`.
    """

    def decorate(cls: type[T]) -> type[T]:
        info = _build_info(cls, key=key, parent=parent, name=name or cls.__name__, version=version)
        model_name = info.name
        _refuse_converters(model_name, cls)
        unique_fields = tuple(dict.fromkeys([*unique, *unique_declared(info)]))
        for field in unique_fields:
            if field not in info.field_types:
                raise ModelDefinitionError(model_name, "unique names an unknown field", field=field)
            if not _is_key_type(info.field_types[field]):
                raise ModelDefinitionError(
                    model_name,
                    "a unique field must hold str, int, bytes, uuid.UUID or a tuple of these",
                    field=field,
                )
        if len(set(unique)) != len(tuple(unique)) or info.key_field in unique_fields:
            raise ModelDefinitionError(
                model_name, "unique fields must be distinct and not the key (keys are unique)"
            )
        for validator in validators:
            if not callable(validator):
                raise ModelDefinitionError(model_name, f"validator {validator!r} is not callable")
            if inspect.iscoroutinefunction(validator):
                raise ModelDefinitionError(
                    model_name,
                    f"validator {_rule_name(validator)!r} is async; validators run on every "
                    "write and must be plain functions",
                )
        info.unique_fields = unique_fields
        info.indexes = resolve(info, indexes)
        info.validators = tuple(validators)
        info.rules = _check_rules(model_name, rules)
        _check_space_names(info)
        setattr(cls, _ATTR, info)
        return cls

    return decorate


def _refuse_converters(model_name: str, cls: type, seen: set[type] | None = None) -> None:
    """A converter would run again on every read (records are rebuilt through ``__init__``), so
    a stored 3 converted by ``x * 10`` would read as 300: refuse it, in nested classes too."""
    seen = set() if seen is None else seen
    if cls in seen:
        return
    seen.add(cls)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable names: the type checker reports them; judge what is known
        hints = {}
    for field in attrs.fields(cls):
        if field.converter is not None:
            raise ModelDefinitionError(
                model_name,
                f"{cls.__name__}.{field.name} has a converter, which would run again on every "
                "read of a stored record; convert the value before building the record, or "
                "check it with a validator",
                field=field.name,
            )
        for nested in _attrs_classes_in(hints.get(field.name, field.type)):
            _refuse_converters(model_name, nested, seen)


def _attrs_classes_in(tp: object) -> list[type]:
    """The attrs classes a field type names, at any depth (``Optional[X]``, ``tuple[X, ...]``)."""
    if isinstance(tp, type) and attrs.has(tp):
        return [tp]
    return [cls for arg in typing.get_args(tp) for cls in _attrs_classes_in(arg)]


def _structure_problems(exc: BaseException) -> list[tuple[str, str]]:
    """(field, problem) for each failure cattrs reports, the field taken from its notes."""
    if isinstance(exc, BaseExceptionGroup):
        return [each for inner in exc.exceptions for each in _structure_problems(inner)]
    where = next((n for n in getattr(exc, "__notes__", ()) if "@ attribute" in n), "")
    field = where.rpartition("@ attribute ")[2] if where else ""
    if isinstance(exc, KeyError):
        return [(field, f"missing field {exc.args[0]!r}")]
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        extra = ", ".join(sorted(map(str, exc.extra_fields)))
        return [(field, f"unknown field(s) {extra} in {exc.cl.__name__}")]
    return [(field, _reason(exc))]


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _rule_name(rule: object) -> str:
    return getattr(rule, "__qualname__", None) or getattr(rule, "__name__", None) or repr(rule)


def _check_rules(model_name: str, rules: Sequence[Any]) -> tuple[Rule, ...]:
    for rule in rules:
        if not isinstance(rule, Rule):
            raise ModelDefinitionError(
                model_name,
                f"rules= takes netabase.allow(...) / netabase.require(...), got {rule!r}",
            )
    return tuple(rules)


def info_of(cls: type[T]) -> ModelInfo[T] | None:
    """The descriptor of a model class, or None when ``cls`` is not a netabase model."""
    info = cls.__dict__.get(_ATTR) if isinstance(cls, type) else None
    return info if isinstance(info, ModelInfo) else None


def _is_frozen(cls: type) -> bool:
    """Whether instances are immutable, so a cache may hand out the same object twice."""
    from attr._make import _frozen_setattrs

    return getattr(cls, "__setattr__", None) is _frozen_setattrs


def _check_space_names(info: ModelInfo[Any]) -> None:
    """Every keyspace the model uses is named after it (and its unique fields and links), and
    a name must fit a backend key (LMDB names its databases with keys): refuse longer ones."""
    for space in _layout.model_spaces(info):
        size = len(space.encode())
        if size > _keys.MAX_KEY_SIZE:
            raise ModelDefinitionError(
                info.name[:40],
                f"its keyspace {space[:60]!r}... takes {size} bytes, more than the "
                f"{_keys.MAX_KEY_SIZE} a keyspace name may take: shorten the model name or field",
            )


def _build_info(
    cls: type[T], *, key: str, parent: str | None, name: str, version: int
) -> ModelInfo[T]:
    model_name = cls.__name__ if isinstance(cls, type) else repr(cls)
    if not isinstance(cls, type) or not attrs.has(cls):
        raise ModelDefinitionError(
            model_name,
            "netabase.model must decorate an attrs class; put @netabase.model(...) above "
            "@attrs.frozen (or @attrs.define)",
        )
    if not name.isidentifier():
        raise ModelDefinitionError(model_name, f"model name {name!r} must be an identifier")
    if not 1 <= version <= 255:
        raise ModelDefinitionError(model_name, f"version must be within 1..255, got {version}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise ModelDefinitionError(model_name, f"cannot resolve field annotations: {exc}") from exc
    fields = {field.name: field for field in attrs.fields(cls)}
    if key not in fields:
        raise ModelDefinitionError(
            model_name, f"key field {key!r} does not exist; fields: {', '.join(fields)}", field=key
        )
    key_type = hints.get(key)
    if not _is_key_type(key_type):
        raise ModelDefinitionError(
            model_name,
            f"key type {key_type!r} is not supported; use str, int, bytes, uuid.UUID or a "
            "tuple of these",
            field=key,
        )
    auto = _auto_key(model_name, fields, key, key_type)
    checks: list[tuple[str, Checker]] = []
    for field_name in fields:
        if field_name not in hints:
            raise ModelDefinitionError(model_name, "field has no annotation", field=field_name)
        try:
            checks.append((field_name, build_checker(hints[field_name])))
        except UnsupportedType as exc:
            raise ModelDefinitionError(model_name, str(exc), field=field_name) from exc
    try:
        info = ModelInfo(
            typing.cast("type[T]", cls), name, key, key_type, version, tuple(checks), hints
        )
    except Exception as exc:
        raise ModelDefinitionError(
            model_name, f"the codec cannot handle this class: {exc}"
        ) from exc
    info.auto = auto
    info.links = tuple(
        _resolve_link(info, field_name, hints[field_name], field.metadata[_LINK_KEY])
        for field_name, field in fields.items()
        if _LINK_KEY in field.metadata
    )
    if parent is not None:
        by_field = {entry.field: entry for entry in info.links}
        if parent not in by_field:
            raise ModelDefinitionError(
                model_name,
                f"parent {parent!r} must name a netabase.link field of this model",
                field=parent,
            )
        if by_field[parent].many:
            raise ModelDefinitionError(
                model_name, "a parent link must hold a single key, not a collection", field=parent
            )
        info.parent = by_field[parent]
    return info


def _auto_key(
    model_name: str, fields: dict[str, attrs.Attribute[Any]], key: str, key_type: object
) -> type | None:
    """The generated key's type (None: keys are given); `auto` only fits an int or str key."""
    for field_name, field in fields.items():
        if is_auto(field) and field_name != key:
            raise ModelDefinitionError(
                model_name,
                f"netabase.auto() generates keys; only the key field ({key!r}) may use it",
                field=field_name,
            )
    if not is_auto(fields[key]):
        return None
    if key_type is not int and key_type is not str:
        raise ModelDefinitionError(
            model_name,
            f"netabase.auto() generates int or str keys, not {_type_name(key_type)}",
            field=key,
        )
    return key_type


def _is_key_type(tp: object) -> bool:
    if tp in _keys.SCALAR_KEY_TYPES:
        return True
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        return bool(args) and ... not in args and all(a in _keys.SCALAR_KEY_TYPES for a in args)
    return False


def _resolve_link(
    source: ModelInfo[Any], field: str, field_type: object, declaration: _LinkDeclaration
) -> LinkInfo:
    if declaration.target == "self":
        target = source
    else:
        resolved: ModelInfo[Any] | None = (
            info_of(declaration.target) if isinstance(declaration.target, type) else None
        )
        if resolved is None:
            raise ModelDefinitionError(
                source.name,
                f"link target {declaration.target!r} is not a netabase model "
                '(decorate it with @netabase.model, or use "self")',
                field=field,
            )
        target = resolved
    for option in ("unique", "required"):
        if not isinstance(getattr(declaration, option), bool):
            raise ModelDefinitionError(
                source.name,
                f"link({option}=...) must be True or False, got {getattr(declaration, option)!r}",
                field=field,
            )
    if declaration.on_delete not in _ON_DELETE:
        raise ModelDefinitionError(
            source.name,
            f"on_delete must be one of {', '.join(_ON_DELETE)}, got {declaration.on_delete!r}",
            field=field,
        )
    many, container = _link_shape(source, field, field_type, target, declaration)
    if declaration.on_delete == "set_null" and declaration.required and not many:
        raise ModelDefinitionError(
            source.name,
            'on_delete="set_null" needs required=False (and an Optional field type)',
            field=field,
        )
    if declaration.unique and many:
        raise ModelDefinitionError(
            source.name, "unique=True applies to single-key links only", field=field
        )
    return LinkInfo(
        field=field,
        source=source,
        target=target,
        many=many,
        container=container,
        on_delete=declaration.on_delete,
        unique=declaration.unique,
        required=declaration.required,
    )


def _link_shape(
    source: ModelInfo[Any],
    field: str,
    field_type: object,
    target: ModelInfo[Any],
    declaration: _LinkDeclaration,
) -> tuple[bool, type | None]:
    key_type = target.key_type
    origin = typing.get_origin(field_type)
    args = typing.get_args(field_type)
    expected = f"{_type_name(key_type)} (the key type of {target.name})"
    if field_type == key_type and declaration.required:
        return False, None  # a single link, even when the key type is itself a tuple
    if origin in (tuple, frozenset) and field_type != typing.Optional[key_type]:  # noqa: UP045
        if not declaration.required:
            raise ModelDefinitionError(
                source.name,
                "a collection link cannot be required=False: an empty collection already means "
                "no link (give it default=() or default=frozenset() instead)",
                field=field,
            )
        item = args[0] if args else None
        if origin is tuple and not (len(args) == 2 and args[1] is ...):
            item = None
        if item != key_type:
            raise ModelDefinitionError(
                source.name,
                f"a collection link must be tuple[K, ...] or frozenset[K] with K = {expected}",
                field=field,
            )
        return True, typing.cast(type, origin)
    if declaration.required:
        if field_type != key_type:
            raise ModelDefinitionError(
                source.name,
                f"link field type {_type_name(field_type)} must be {expected}",
                field=field,
            )
    elif field_type != typing.Optional[key_type]:  # noqa: UP045 - key_type is a runtime value
        raise ModelDefinitionError(
            source.name,
            f"an optional link field must be {_type_name(key_type)} | None",
            field=field,
        )
    return False, None


def _type_name(tp: object) -> str:
    if tp is uuid.UUID:
        return "uuid.UUID"
    if typing.get_origin(tp) is not None:
        return repr(tp)  # tuple[str, int], not just "tuple"
    return getattr(tp, "__name__", None) or repr(tp)
