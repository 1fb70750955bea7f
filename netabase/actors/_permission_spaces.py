"""Where permission state lives in the backend, and the revision token every change rewrites.

Every key here is a tuple encoding (`netabase._keys`) of names and object ids, so a look-up by
leading elements is a `component_range` and never takes in a longer name.
"""

from __future__ import annotations

import hashlib
import os

from .._keys import MAX_KEY_SIZE, UUID_CODE, encode_str
from ..backends import Put

GRANTS = "~perm.grants"
"""principal | object-id | role -> (model, key, role): what a principal holds."""
OBJECTS = "~perm.objects"
"""object-id | principal | role -> (principal, role): who holds what on a record."""
MEMBERS = "~perm.members"
"""group | member -> member."""
MEMBER_OF = "~perm.memberof"
"""member | group -> group."""
META = "~perm.meta"
REVISION = b"revision"
GRANTS_REVISION = b"grants"
"""A second token, rewritten only by grants, revokes and membership changes (not by records
moving): what an enforced write pins of the permission state besides the records it judged."""
LAYOUT = b"layout"
"""In ``META``: the key layout of the rows here (absent: written by netabase 0.1)."""
LAYOUT_VERSION = b"2"
SPACES = (GRANTS, OBJECTS, MEMBERS, MEMBER_OF, META)

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
    return encode_str(principal) + oid + encode_str(role)


def object_key(oid: bytes, principal: str, role: str) -> bytes:
    return oid + encode_str(principal) + encode_str(role)


def membership_key(outer: str, inner: str) -> bytes:
    """The key of ``MEMBERS`` (group, member) and of ``MEMBER_OF`` (member, group)."""
    return encode_str(outer) + encode_str(inner)


def revision_op() -> Put:
    """The write that tells every permission cache, in any process, that decisions changed."""
    return Put(META, REVISION, os.urandom(16))


def grants_op() -> Put:
    """The write that marks a change of grants or memberships (beside `revision_op`)."""
    return Put(META, GRANTS_REVISION, os.urandom(16))
