"""Where permission state lives in the backend, and the revision token every change rewrites."""

from __future__ import annotations

import hashlib
import os

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
SPACES = (GRANTS, OBJECTS, MEMBERS, MEMBER_OF, META)


def object_id(model: str, key: bytes) -> bytes:
    """A fixed-size id of a record, so index keys stay small whatever the key size."""
    return hashlib.blake2b(model.encode() + b"\x00" + key, digest_size=16).digest()


def revision_op() -> Put:
    """The write that tells every permission cache, in any process, that decisions changed."""
    return Put(META, REVISION, os.urandom(16))
