"""Planning permission writes (grant, revoke, membership) as conditional batches, and applying
them so that one refused batch fails alone."""

from __future__ import annotations

from typing import Any

import msgpack

from .._errors import HierarchyCycle, NetabaseError, ValidationError
from .._keys import component_range, encode_str
from ..actors._messages import AddMember, GrantRole, Message, RemoveMember, RevokeRole
from ..actors._permission_spaces import (
    GRANTS,
    MEMBER_OF,
    MEMBERS,
    OBJECTS,
    grant_key,
    grants_op,
    membership_key,
    object_id,
    object_key,
    revision_op,
)
from ..backends import Backend, Delete, Expect, ExpectKeys, Op, Put, WriteBatch
from ._scan import scan_prefix

Plan = tuple[WriteBatch, Any]
"""A write's batch and the reply to give once it is applied."""


class WritePlanner:
    """Turns one permission write message into its batch; the reads it rests on are pinned."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def plan(self, message: Message) -> Plan:
        """The batch for ``message`` and its reply; HierarchyCycle for a membership cycle."""
        match message:
            case GrantRole():
                return self._grant(message)
            case RevokeRole():
                return await self._revoke(message)
            case AddMember():
                return await self._add_member(message)
            case RemoveMember():
                return await self._remove_member(message)
        raise TypeError(f"not a permission write: {type(message).__name__}")

    def _grant(self, message: GrantRole) -> Plan:
        principal, model, key, role = message.principal, message.model, message.key, message.role
        oid = object_id(model, key)
        ops: list[Op] = [
            Put(GRANTS, grant_key(principal, oid, role), msgpack.packb((model, key, role))),
            Put(OBJECTS, object_key(oid, principal, role), msgpack.packb((principal, role))),
            revision_op(),
            grants_op(),
        ]
        return WriteBatch(tuple(ops)), None

    async def _revoke(self, message: RevokeRole) -> Plan:
        principal, model, key = message.principal, message.model, message.key
        oid = object_id(model, key)
        lo, hi = component_range(encode_str(principal) + oid)
        rows = await scan_prefix(self.backend, GRANTS, encode_str(principal) + oid)
        roles = [
            r for _, _, r in (msgpack.unpackb(v) for _, v in rows) if message.role in (None, r)
        ]
        ops: list[Op] = []
        for each in roles:
            ops.append(Delete(GRANTS, grant_key(principal, oid, each)))
            ops.append(Delete(OBJECTS, object_key(oid, principal, each)))
        ops.append(revision_op())
        ops.append(grants_op())
        # The count rests on these reads: a write in between (this round, elsewhere) re-plans.
        held = ExpectKeys(GRANTS, lo, frozenset(k for k, _ in rows), hi)
        return WriteBatch(tuple(ops), (held,)), len(roles)

    async def _remove_member(self, message: RemoveMember) -> Plan:
        group, member = message.group, message.member
        member_of = membership_key(member, group)
        _, (present,) = await self.backend.read(MEMBER_OF, [member_of])
        ops: list[Op] = [
            Delete(MEMBERS, membership_key(group, member)),
            Delete(MEMBER_OF, member_of),
            revision_op(),
            grants_op(),
        ]
        return WriteBatch(tuple(ops), (Expect(MEMBER_OF, member_of, present),)), (
            present is not None
        )

    async def _add_member(self, message: AddMember) -> Plan:
        group, member = message.group, message.member
        expects = await self._refuse_cycle(group, member)
        ops: list[Op] = [
            Put(MEMBERS, membership_key(group, member), msgpack.packb(member)),
            Put(MEMBER_OF, membership_key(member, group), msgpack.packb(group)),
            revision_op(),
            grants_op(),
        ]
        return WriteBatch(tuple(ops), tuple(expects)), None

    async def _refuse_cycle(self, group: str, member: str) -> list[ExpectKeys]:
        """Refuse ``member`` joining ``group`` if ``group`` is already (within) ``member``.

        The walk's reads become conditions, so a concurrent change elsewhere (another process)
        makes the write re-plan instead of closing a cycle.
        """
        if group == member:
            raise HierarchyCycle(
                "permissions", f"group {group!r} cannot contain itself", field="members"
            )
        expects = []
        seen = {group}
        frontier = [group]
        while frontier:
            following = []
            for principal in frontier:
                lo, hi = component_range(encode_str(principal))
                rows = await scan_prefix(self.backend, MEMBER_OF, lo)
                expects.append(ExpectKeys(MEMBER_OF, lo, frozenset(k for k, _ in rows), hi))
                for _, value in rows:
                    parent = msgpack.unpackb(value)
                    if parent == member:
                        raise HierarchyCycle(
                            "permissions",
                            f"adding {member!r} to {group!r} would make a membership cycle "
                            f"({group!r} is already within {member!r})",
                            field="members",
                        )
                    if parent not in seen:
                        seen.add(parent)
                        following.append(parent)
            frontier = following
        return expects


async def apply_batches(
    backend: Backend, batches: list[WriteBatch]
) -> list[int | NetabaseError | None]:
    """Each batch's outcome: None (applied), its first unmet condition, or the error its
    own operations caused (a key the backend refuses), which fails no other batch."""
    try:
        return list((await backend.apply(batches)).failed)
    except ValidationError as exc:
        if len(batches) == 1:
            return [exc]
    outcomes: list[int | NetabaseError | None] = []
    for index, batch in enumerate(batches):  # rare: find the culprit, apply the others
        try:
            outcomes.extend((await backend.apply([batch])).failed)
        except ValidationError as exc:
            outcomes.append(exc)
        except NetabaseError as exc:  # the backend failed: the ones applied stay answered
            outcomes.extend([exc] * (len(batches) - index))
            break
    return outcomes
