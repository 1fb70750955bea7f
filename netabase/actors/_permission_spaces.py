"""The permission spaces' layout as the permission actor uses it (defined in `netabase._layout`),
and the revision tokens every change rewrites."""

from __future__ import annotations

import os

from .._layout import (
    GRANTS,
    GRANTS_REVISION,
    LAYOUT,
    LAYOUT_VERSION,
    MAX_NAME_KEY,
    MEMBER_OF,
    MEMBERS,
    OBJECTS,
    OID_ELEMENT,
    REVISION,
    grant_key,
    membership_key,
    object_id,
    object_key,
)
from .._layout import PERMISSION_META as META
from .._layout import PERMISSION_SPACES as SPACES
from ..backends import Put

__all__ = [
    "GRANTS",
    "GRANTS_REVISION",
    "LAYOUT",
    "LAYOUT_VERSION",
    "MAX_NAME_KEY",
    "MEMBERS",
    "MEMBER_OF",
    "META",
    "OBJECTS",
    "OID_ELEMENT",
    "REVISION",
    "SPACES",
    "grant_key",
    "grants_op",
    "membership_key",
    "object_id",
    "object_key",
    "revision_op",
]


def revision_op() -> Put:
    """The write that tells every permission cache, in any process, that decisions changed."""
    return Put(META, REVISION, os.urandom(16))


def grants_op() -> Put:
    """The write that marks a change of grants or memberships (beside `revision_op`)."""
    return Put(META, GRANTS_REVISION, os.urandom(16))
