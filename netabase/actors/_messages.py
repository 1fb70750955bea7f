"""The messages actors receive: one frozen class per request, with typed fields.

``operation`` names the public call a message serves, so `RequestTimeout` and `ActorCrashed`
can say what the caller was doing. Store actors' main lanes take `Get` .. `PlanRemoval`, their query
lanes `Exists` and `Peek`, and the permission actor `Check` .. `RemoveMember`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import attrs

if TYPE_CHECKING:
    from ..permissions._queries import Judgement, Query
    from ._writes import Guard, PutItem


class Message:
    """Base of every message."""

    __slots__ = ()
    operation: ClassVar[str]


# -- a store actor's main lane ---------------------------------------------------------------


@attrs.frozen
class Get(Message):
    operation: ClassVar[str] = "get"
    key: bytes


@attrs.frozen
class GetMany(Message):
    operation: ClassVar[str] = "get_many"
    keys: Sequence[bytes]


@attrs.frozen
class Contains(Message):
    operation: ClassVar[str] = "contains"
    key: bytes


@attrs.frozen
class Count(Message):
    operation: ClassVar[str] = "count"


@attrs.frozen
class Scan(Message):
    """One page of a scan: keys ``lo <= key < hi`` (``hi`` None: to the end)."""

    operation: ClassVar[str] = "scan"
    lo: bytes
    hi: bytes | None
    limit: int
    reverse: bool


@attrs.frozen
class Referrers(Message):
    operation: ClassVar[str] = "referrers"
    key: bytes


@attrs.frozen
class GetVersioned(Message):
    """The record and its version, read from the backend (the cache does not know versions)."""

    operation: ClassVar[str] = "get_versioned"
    key: bytes


@attrs.frozen
class Insert(Message):
    """``insert`` (``many`` False) or ``insert_many``; the enforced view adds a `Guard`.

    ``if_absent``: every key must be absent; ``if_version``: the one key must be at that
    version (0: absent)."""

    operation: ClassVar[str] = "insert"
    items: Sequence[PutItem]
    many: bool
    guard: Guard | None = None
    if_absent: bool = False
    if_version: int | None = None


@attrs.frozen
class Remove(Message):
    """``remove`` (``many`` False: the answer is a bool) or ``remove_many`` (a count)."""

    operation: ClassVar[str] = "remove"
    keys: Sequence[bytes]
    many: bool
    guard: Guard | None = None


@attrs.frozen
class PlanRemoval(Message):
    """A dry run of `Remove` for the enforced view: what it would delete, rewrite and be
    refused by (a `RemovalPreview`); nothing is written."""

    operation: ClassVar[str] = "remove"
    keys: Sequence[bytes]


READS = frozenset({Get, GetMany, Contains})
"""Served together: one backend read for the batch's cache misses."""
WRITES = frozenset({Insert, Remove})
"""Served together: one backend apply for the batch."""


# -- a store actor's query lane (asked by other actors) ---------------------------------------


@attrs.frozen
class Exists(Message):
    """Whether each key holds a record (link targets; cached entries are not revalidated)."""

    operation: ClassVar[str] = "exists"
    keys: Sequence[bytes]


@attrs.frozen
class Peek(Message):
    """The current record (or `CorruptRecord`, None if absent) of each key, never cached."""

    operation: ClassVar[str] = "peek"
    keys: Sequence[bytes]


# -- the permission actor --------------------------------------------------------------------


@attrs.frozen
class Check(Message):
    operation: ClassVar[str] = "check"
    queries: Sequence[Query]


@attrs.frozen
class Judge(Message):
    """The enforced view's judgements; answered with the revision they hold under."""

    operation: ClassVar[str] = "judge"
    items: Sequence[Judgement]


@attrs.frozen
class Explain(Message):
    operation: ClassVar[str] = "explain"
    query: Query


@attrs.frozen
class ListObjects(Message):
    """One page of ``list_objects``: keys after ``after`` (None: from the start)."""

    operation: ClassVar[str] = "list_objects"
    principal: str
    action: str
    model: str
    after: bytes | None
    limit: int


@attrs.frozen
class GrantRole(Message):
    operation: ClassVar[str] = "grant"
    principal: str
    model: str
    key: bytes
    role: str


@attrs.frozen
class RevokeRole(Message):
    """Take back ``role`` (every role when None)."""

    operation: ClassVar[str] = "revoke"
    principal: str
    model: str
    key: bytes
    role: str | None


@attrs.frozen
class AddMember(Message):
    operation: ClassVar[str] = "add_member"
    group: str
    member: str


@attrs.frozen
class RemoveMember(Message):
    operation: ClassVar[str] = "remove_member"
    group: str
    member: str


PERMISSION_WRITES = (GrantRole, RevokeRole, AddMember, RemoveMember)
