"""The storage layout: every backend keyspace name and every key/value format netabase writes.

Existing databases must keep opening: nothing here may change what it produces (a test pins the
exact bytes, tests/test_layout.py). Imports `_keys` only.

Reverse index: the referrers of a target model T live in space ``~ref.T``. An entry says "record
``sk`` of model S names ``tk`` in field f"; its key is ``H(tk) + H(S, f, sk)`` with ``H`` a 16-byte
BLAKE2b digest, so all referrers of ``tk`` share a fixed 16-byte prefix and every entry key is 32
bytes whatever the key sizes (LMDB's 511-byte limit applies to index keys too). The value holds S,
f and ``sk`` in full.

Permission rows: every key is a tuple encoding (`netabase._keys`) of names and object ids, so a
look-up by leading elements is a `component_range` and never takes in a longer name.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack

from ._keys import MAX_KEY_SIZE, UUID_CODE, encode_str

if TYPE_CHECKING:
    from ._model import ModelInfo

# backend and schema bookkeeping

BACKEND_META_SPACE = "~meta"
"""LMDB's own space: per space, the layout version the backend wrote it in."""
SCHEMA_SPACE = "~schema"
"""Model name -> the stored schema of that model (`netabase._stored_schema`)."""
KEYS_SPACE = "~keys"
"""Model name -> the last generated int key reserved (`netabase._key_blocks`)."""

# model spaces


def record_space(model: str) -> str:
    """The keyspace holding ``model``'s records: encoded key -> encoded record."""
    return model


def ref_space(model: str) -> str:
    """The keyspace of the reverse index of links that point at ``model``."""
    return f"~ref.{model}"


def unique_link_space(source: str, field: str) -> str:
    """Space holding, for a ``unique`` link, target key -> the source key that claims it."""
    return f"~uniq.{source}.{field}"


def unique_field_space(model: str, field: str) -> str:
    """Space holding, for a ``unique`` field, encoded value -> the key of the record holding it."""
    return f"~uniqf.{model}.{field}"


def index_space(model: str, index: str) -> str:
    """Space of a secondary index (`netabase._indexes`): entry key -> the record's key."""
    return f"~ix.{model}.{index}"


INDEX_META_SPACE = "~ixmeta"
"""Per index: its build state, and per indexed datetime field the kind (aware or naive) its
values have, so a field never mixes them (keys below)."""


def index_state_key(model: str, index: str) -> bytes:
    """In ``INDEX_META_SPACE``: the state of an index (being built, built) and its progress."""
    return encode_str("state") + encode_str(model) + encode_str(index)


def datetime_kind_key(model: str, field: str) -> bytes:
    """In ``INDEX_META_SPACE``: ``b"aware"`` or ``b"naive"``, the kind of the indexed datetime
    values the field holds (set by the first one written)."""
    return encode_str("tz") + encode_str(model) + encode_str(field)


def claim_spaces(info: ModelInfo[Any]) -> list[str]:
    """The claim spaces of ``info``: its unique links, then its unique fields."""
    links = [unique_link_space(info.name, link.field) for link in info.links if link.unique]
    return links + [unique_field_space(info.name, field) for field in info.unique_fields]


def model_spaces(info: ModelInfo[Any]) -> list[str]:
    """Every keyspace named after model ``info``: records, reverse index, claims, indexes."""
    indexes = [index.space for index in info.indexes]
    return [record_space(info.name), ref_space(info.name), *claim_spaces(info), *indexes]


# reverse-index entries

DIGEST = 16


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST).digest()


def ref_prefix(target_key: bytes) -> bytes:
    """The prefix every reverse-index entry of ``target_key`` starts with."""
    return _digest(target_key)


def ref_key(target_key: bytes, source: str, field: str, source_key: bytes) -> bytes:
    """The reverse-index key of "record ``source_key`` of ``source`` names ``target_key``"."""
    origin = source.encode() + b"\x00" + field.encode() + b"\x00" + source_key
    return _digest(target_key) + _digest(origin)


def ref_value(source: str, field: str, source_key: bytes) -> bytes:
    """The reverse-index value: the referrer in full."""
    packed: bytes = msgpack.packb((source, field, source_key), use_bin_type=True)
    return packed


class RefEntry(NamedTuple):
    """One decoded reverse-index entry."""

    index_key: bytes
    source: str
    field: str
    source_key: bytes


def parse_ref(index_key: bytes, value: bytes) -> RefEntry:
    """Decode a reverse-index entry written with `ref_key` / `ref_value`."""
    source, field, source_key = msgpack.unpackb(value, raw=False)
    return RefEntry(index_key, source, field, source_key)


# permission spaces

GRANTS = "~perm.grants"
"""principal | object-id | role -> (model, key, role): what a principal holds."""
OBJECTS = "~perm.objects"
"""object-id | principal | role -> (principal, role): who holds what on a record."""
MEMBERS = "~perm.members"
"""group | member -> member."""
MEMBER_OF = "~perm.memberof"
"""member | group -> group."""
PERMISSION_META = "~perm.meta"
"""The revision tokens and the layout version of the permission rows."""
REVISION = b"revision"
GRANTS_REVISION = b"grants"
"""A second token, rewritten only by grants, revokes and membership changes (not by records
moving): what an enforced write pins of the permission state besides the records it judged."""
LAYOUT = b"layout"
"""In ``PERMISSION_META``: the key layout of the rows here (absent: written by netabase 0.1)."""
LAYOUT_VERSION = b"2"
PERMISSION_SPACES = (GRANTS, OBJECTS, MEMBERS, MEMBER_OF, PERMISSION_META)

OID_ELEMENT = 17
"""The encoded size of an object id: a UUID element, its type code and 16 bytes."""
MAX_NAME_KEY = (MAX_KEY_SIZE - OID_ELEMENT) // 2
"""The largest encoded principal, group or role name: two names and an object id fit a key."""


def object_id(model: str, key: bytes) -> bytes:
    """A fixed-size id of a record, as a key element, so index keys stay small whatever the key
    size; a UUID element, so a raw digest byte 0xff is never read as an escaped NUL."""
    digest = hashlib.blake2b(model.encode() + b"\x00" + key, digest_size=16).digest()
    return bytes((UUID_CODE,)) + digest


def grant_key(principal: str, oid: bytes, role: str) -> bytes:
    """The key of a ``GRANTS`` row."""
    return encode_str(principal) + oid + encode_str(role)


def object_key(oid: bytes, principal: str, role: str) -> bytes:
    """The key of an ``OBJECTS`` row."""
    return oid + encode_str(principal) + encode_str(role)


def membership_key(outer: str, inner: str) -> bytes:
    """The key of ``MEMBERS`` (group, member) and of ``MEMBER_OF`` (member, group)."""
    return encode_str(outer) + encode_str(inner)
