"""`TxView`: a transaction's reads and writes before it commits.

Reads come from the transaction's `Snapshot`, overlaid by the transaction's own staged writes,
and every value, existence answer and key range read from the snapshot is recorded. The commit
is one `WriteBatch`: the staged writes, conditioned on everything recorded, so it applies only
if nothing the transaction read has changed since (serializable, by optimistic validation).

The view offers ``read`` and ``scan`` like a `Backend`, so the store actors' write planners
(links, unique claims, cascades) run on it unchanged and their reads join the read set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import TransactionConflict
from .._keys import MAX_KEY_SIZE
from ..backends import EXISTS, Condition, Delete, Expect, ExpectKeys, Op, Put, Snapshot, WriteBatch
from ..backends._base import _Exists

ABOVE_EVERY_KEY = b"\xff" * (MAX_KEY_SIZE + 1)
"""An upper bound greater than any key: a range condition "to the end of the space"."""

_Seen = bytes | _Exists | None


class TxView:
    """Snapshot reads overlaid by staged writes, with the read set they add up to."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.staged: dict[str, dict[bytes, Op]] = {}
        self.seen: dict[tuple[str, bytes], _Seen] = {}
        """(space, key) -> what the snapshot said: the value, `EXISTS`, or None (absent)."""
        self.ranges: list[ExpectKeys] = []
        self.pins: list[Condition] = []
        """Conditions from elsewhere (what permission judgements went by)."""

    # the overlay

    def _staged(self, space: str, key: bytes) -> Op | None:
        ops = self.staged.get(space)
        return None if ops is None else ops.get(key)

    def stage(self, ops: Sequence[Op]) -> None:
        """Add writes (the last write of a key wins)."""
        for op in ops:
            self.staged.setdefault(op.space, {})[op.key] = op

    def pin(self, conditions: Sequence[Condition]) -> None:
        self.pins.extend(conditions)

    def _note(self, space: str, key: bytes, value: _Seen) -> None:
        known = self.seen.get((space, key), value)
        if (known is None) != (value is None) or (
            isinstance(known, bytes) and isinstance(value, bytes) and known != value
        ):
            # Two answers for one key (no snapshot: Redis): no state at the commit has both.
            raise TransactionConflict(None, detail=" (it read two versions of it)")
        # An exact value says more than "exists": keep the stronger observation.
        self.seen[(space, key)] = value if known is EXISTS else known

    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        """Values of ``keys`` as the transaction sees them (the version is meaningless: 0)."""
        return 0, await self._lookup(space, keys, exact=True)

    async def exists(self, space: str, keys: Sequence[bytes]) -> list[bool]:
        """Whether each key is present; recorded as existence only, not as a value."""
        return [value is not None for value in await self._lookup(space, keys, exact=False)]

    async def _lookup(
        self, space: str, keys: Sequence[bytes], *, exact: bool
    ) -> list[bytes | None]:
        """Staged writes first, the snapshot for the rest; what the snapshot said is recorded
        (its value, or with ``exact`` False only whether the key exists)."""
        out: list[bytes | None] = [None] * len(keys)
        wanted: list[int] = []
        for index, key in enumerate(keys):
            op = self._staged(space, key)
            if op is None:
                wanted.append(index)
            elif isinstance(op, Put):
                out[index] = op.value
        if wanted:
            values = await self.snapshot.read(space, [keys[i] for i in wanted])
            for index, value in zip(wanted, values, strict=True):
                out[index] = value
                seen = value if exact or value is None else EXISTS
                self._note(space, keys[index], seen)
        return out

    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        """Pairs in ``[lo, hi)`` as the transaction sees them; the range read joins the read set,
        so a key another writer adds to it (a phantom) makes the commit fail."""
        staged = sorted(
            (key, op)
            for key, op in self.staged.get(space, {}).items()
            if lo <= key and (hi is None or key < hi)
        )
        want = None if limit is None else limit + len(staged)
        base = await self.snapshot.scan(space, lo, hi, limit=want, reverse=reverse)
        covered_lo, covered_hi = lo, ABOVE_EVERY_KEY if hi is None else hi
        if want is not None and len(base) >= want and base:
            # Only part of the range was read: the condition covers that part.
            if reverse:
                covered_lo = base[-1][0]
            else:
                covered_hi = base[-1][0] + b"\x00"
        self.ranges.append(
            ExpectKeys(space, covered_lo, frozenset(key for key, _ in base), covered_hi)
        )
        for key, value in base:
            self._note(space, key, value)
        merged = {key: value for key, value in base}
        for key, op in staged:
            if not (covered_lo <= key < covered_hi):
                continue
            if isinstance(op, Put):
                merged[key] = op.value
            else:
                merged.pop(key, None)
        pairs = sorted(merged.items(), reverse=reverse)
        return pairs if limit is None else pairs[:limit]

    async def keys(self, space: str) -> list[bytes]:
        """Every key of the space as the transaction sees it (what ``count`` reads)."""
        return [key for key, _ in await self.scan(space)]

    # the commit

    def ops(self) -> list[Op]:
        return [op for ops in self.staged.values() for op in ops.values()]

    def conditions(self) -> list[Condition]:
        point = [Expect(space, key, value) for (space, key), value in self.seen.items()]
        return [*point, *self.ranges, *self.pins]

    def size(self) -> int:
        """Writes plus conditions: what the commit batch will carry."""
        written = sum(len(ops) for ops in self.staged.values())
        return written + len(self.seen) + len(self.ranges) + len(self.pins)

    def batch(self) -> WriteBatch:
        return WriteBatch(tuple(self.ops()), tuple(self.conditions()))

    def written(self, space: str) -> list[tuple[bytes, bool]]:
        """(key, deleted) of every staged write of ``space``."""
        return [(key, isinstance(op, Delete)) for key, op in self.staged.get(space, {}).items()]


def condition_subject(condition: Condition) -> tuple[str, Any]:
    """(space, key or key range) a failed condition was about, for the conflict's message."""
    if isinstance(condition, Expect):
        return condition.space, condition.key
    return condition.space, (condition.prefix, condition.upper)
