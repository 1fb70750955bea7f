"""The backend protocol: ordered byte keyspaces with one atomic, conditional write batch.

A backend stores bytes under non-empty bytes keys of at most 511 bytes, in named keyspaces
("spaces": one per model plus a few internal ones). Everything above it (records, links,
permissions, caches) is built from four primitives, which each backend implements natively:

* ``read``  - values of many keys of one space from one snapshot, plus the space's version;
* ``scan``  - a page of (key, value) pairs of one space in key order, forward or reverse;
* ``apply`` - a list of `WriteBatch`es, group-committed: each batch is applied all-or-nothing
  and only if all its `Expect`/`ExpectKeys` conditions hold when it is applied. Batches may touch
  several spaces. Once ``apply`` returns, the applied batches are durable (as durable as the
  backend is configured to be). Every space a call changed gets its version advanced (by one,
  or by as many as the call stamped, see below);
* ``version`` - a space's version counter, so a cache in one process can detect writes made by
  another process (Redis, or LMDB shared between processes).

A `Put` with ``stamp`` ends with an 8-byte placeholder that the backend replaces, inside the
atomic apply, with the key's new version: a number larger than the space's version before the
call and no larger than after it, and larger for each stamped put of the call, so a key's
stamps increase on every write, across deletions and processes.

Conditions make optimistic concurrency work the same on every backend: a writer reads, plans,
then applies with conditions on what it read; if another writer got there first the batch is
refused (never half-applied) and the writer re-plans.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

import attrs

from .._errors import KeyTooLarge, ValidationError
from .._keys import MAX_KEY_SIZE, prefix_successor
from ._snapshot import LiveSnapshot, Snapshot

if TYPE_CHECKING:
    from ._url import BackendURL


class _Exists:
    __slots__ = ()

    def __repr__(self) -> str:
        return "EXISTS"


EXISTS: Final = _Exists()
"""Expectation value meaning "the key is present, whatever its value"."""


STAMP_SIZE = 8


class Put(NamedTuple):
    """Store ``value`` under ``key``; with ``stamp`` its last 8 bytes become the key's version."""

    space: str
    key: bytes
    value: bytes
    stamp: bool = False


class Stamped(bytes):
    """A value that a stamped `Put` of the same `apply` call writes: as an `Expect` value it
    matches the stored bytes whatever stamp the backend gave them (the last 8 bytes)."""

    __slots__ = ()


class Delete(NamedTuple):
    space: str
    key: bytes


class Expect(NamedTuple):
    """Condition on one key: its exact value, `EXISTS`, or ``None`` for absent."""

    space: str
    key: bytes
    value: bytes | _Exists | None


class ExpectKeys(NamedTuple):
    """Condition that the keys of ``space`` starting with ``prefix`` are exactly ``keys``.

    With ``upper`` the range is ``[prefix, upper)`` instead, e.g. a `component_range` that
    leaves out longer names (``encode_str("a")`` is a byte prefix of ``encode_str("a\x00b")``).
    """

    space: str
    prefix: bytes
    keys: frozenset[bytes]
    upper: bytes | None = None

    def bounds(self) -> tuple[bytes, bytes | None]:
        """The key range ``[lo, hi)`` the condition covers (``hi`` None: unbounded)."""
        if self.upper is not None:
            return self.prefix, self.upper
        return self.prefix, prefix_successor(self.prefix)


Op = Put | Delete
Condition = Expect | ExpectKeys


@attrs.frozen
class WriteBatch:
    """Operations applied all-or-nothing, and only when every condition holds."""

    ops: tuple[Op, ...]
    expects: tuple[Condition, ...] = ()

    def spaces(self) -> set[str]:
        return {op.space for op in self.ops}


@attrs.frozen
class ApplyResult:
    """Outcome of one `Backend.apply` call.

    ``failed[i]`` is None when batch ``i`` was applied, else the index of its first condition
    that did not hold. ``versions`` maps each space the call changed to its (before, after)
    versions; ``after > before`` (a counter may jump: Redis stamps versions with its clock).
    """

    failed: tuple[int | None, ...]
    versions: Mapping[str, tuple[int, int]]


def check_key_sizes(batches: Iterable[WriteBatch]) -> None:
    """Refuse a batch with an empty or oversized key before any backend sees it."""
    for batch in batches:
        for op in batch.ops:
            if len(op.key) > MAX_KEY_SIZE:
                raise KeyTooLarge(op.space, op.key, len(op.key), MAX_KEY_SIZE)
            if not op.key:
                raise ValidationError(op.space, "keys must not be empty", key=op.key)
            if isinstance(op, Put) and op.stamp and len(op.value) < STAMP_SIZE:
                raise ValidationError(
                    op.space, f"a stamped value needs its {STAMP_SIZE}-byte placeholder", key=op.key
                )


def matches(value: bytes | None, expected: bytes | _Exists | None) -> bool:
    """Whether a stored value (None when absent) satisfies an `Expect` value."""
    if expected is EXISTS:
        return value is not None
    if isinstance(expected, Stamped):
        return (
            value is not None
            and len(value) == len(expected)
            and value[:-STAMP_SIZE] == expected[:-STAMP_SIZE]
        )
    return value == expected


def with_stamp(value: bytes, stamp: int) -> bytes:
    """``value`` with its last 8 bytes replaced by ``stamp``."""
    return value[:-STAMP_SIZE] + stamp.to_bytes(STAMP_SIZE, "big")


class Backend(abc.ABC):
    """Base class of every storage backend; see the module docstring for the contract."""

    max_key_size: int = MAX_KEY_SIZE

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    @classmethod
    def from_url(cls, url: BackendURL) -> Backend:
        """The unstarted backend ``url`` names, its options checked (`InvalidURL` naming the
        bad one); `register_backend` with the class serves the scheme through it."""
        raise NotImplementedError(f"{cls.__name__} does not define from_url")

    @abc.abstractmethod
    async def start(self, spaces: Iterable[str]) -> None:
        """Open the store and make sure ``spaces`` exist; raise `BackendUnavailable` if not."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release every thread, file and connection; idempotent."""

    @abc.abstractmethod
    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        """The space's version and the values of ``keys`` (None when absent), one snapshot."""

    @abc.abstractmethod
    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        """Pairs with ``lo <= key < hi`` (``hi`` None: unbounded) in key order, at most ``limit``.

        With ``reverse`` the pairs come largest key first, still within the same bounds.
        """

    @abc.abstractmethod
    async def apply(self, batches: Sequence[WriteBatch]) -> ApplyResult:
        """Apply each batch atomically if its conditions hold; see `ApplyResult`."""

    @abc.abstractmethod
    async def version(self, space: str) -> int:
        """The space's version counter (0 before its first write)."""

    @abc.abstractmethod
    async def count(self, space: str) -> int:
        """Number of keys in the space."""

    async def snapshot(self) -> Snapshot:
        """A `Snapshot` of every space; this default reads live (no isolation)."""
        return LiveSnapshot(self)
