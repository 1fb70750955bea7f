"""Upgrading permission rows written by netabase 0.1 to today's key layout, once, at open.

0.1 keyed a grant as ``principal | 16-byte digest | role``; a digest starting with 0xff read as
an escaped NUL of the principal, so whole-name look-ups could not find it. Today the object id is
a UUID element (`object_id`). Memberships did not change. The upgrade is one conditional batch:
every old grant row re-keyed (with its ``OBJECTS`` twin) and the layout mark written, or nothing,
so two processes opening an old database at once upgrade it exactly once. A grant or membership
whose names exceed today's limit (0.1 allowed longer names and roles, and the object id grew by a
byte) could never be checked or revoked again: it is dropped, with a warning naming it.
"""

from __future__ import annotations

import logging

import msgpack

from .._keys import MAX_KEY_SIZE, decode_element, encode_str
from ..backends import Backend, Delete, Expect, Op, Put, WriteBatch
from ..backends._paging import scan_pages
from ._permission_spaces import (
    GRANTS,
    LAYOUT,
    LAYOUT_VERSION,
    MAX_NAME_KEY,
    MEMBER_OF,
    MEMBERS,
    META,
    OBJECTS,
    grant_key,
    grants_op,
    object_id,
    object_key,
    revision_op,
)

PAGE = 1000
ATTEMPTS = 10

logger = logging.getLogger("netabase.permissions")


async def upgrade_permission_layout(backend: Backend) -> int:
    """Bring the stored permission rows to today's layout; return how many grants moved."""
    for _ in range(ATTEMPTS):
        _, (mark,) = await backend.read(META, [LAYOUT])
        if mark == LAYOUT_VERSION:
            return 0
        rows = await _all_rows(backend, GRANTS)
        ops: list[Op] = []
        expects = [Expect(META, LAYOUT, mark)]
        moved = 0
        dropped: list[tuple[str, str, str]] = []
        for key, value in rows:
            old = _old_grant(key, value)
            if old is None:
                continue
            principal, digest, (model, encoded, role) = old
            oid = object_id(model, encoded)
            ops += [
                Delete(GRANTS, key),
                Delete(OBJECTS, digest + encode_str(principal) + encode_str(role)),
            ]
            expects.append(Expect(GRANTS, key, value))
            moved += 1
            new_key = grant_key(principal, oid, role)
            if not (_fits(principal) and _fits(role)) or len(new_key) > MAX_KEY_SIZE:
                dropped.append((principal, model, role))
                continue
            ops += [
                Put(GRANTS, new_key, value),
                Put(OBJECTS, object_key(oid, principal, role), msgpack.packb((principal, role))),
            ]
        lost_members = await _oversized_memberships(backend)
        for space, key, value in lost_members:
            ops.append(Delete(space, key))
            expects.append(Expect(space, key, value))
        ops.append(Put(META, LAYOUT, LAYOUT_VERSION))
        if moved or lost_members:
            ops += [revision_op(), grants_op()]
        result = await backend.apply([WriteBatch(tuple(ops), tuple(expects))])
        if result.failed[0] is None:
            for principal, model, role in dropped:
                logger.warning(
                    "dropped a grant of %r on a %s record to %r: its names no longer fit "
                    "(at most %d bytes each, %d for the whole key); shorten them and grant again",
                    role[:40],
                    model,
                    principal[:40],
                    MAX_NAME_KEY,
                    MAX_KEY_SIZE,
                )
            if lost_members:
                logger.warning(
                    "dropped %d membership rows whose names no longer fit the %d-byte name limit",
                    len(lost_members),
                    MAX_NAME_KEY,
                )
            return moved
    return 0  # another opener keeps changing the rows; it upgrades them itself


def _fits(name: str) -> bool:
    return len(encode_str(name)) <= MAX_NAME_KEY


async def _oversized_memberships(backend: Backend) -> list[tuple[str, bytes, bytes]]:
    """(space, key, value) of membership rows naming a group or member over the name limit."""
    found = []
    for space in (MEMBERS, MEMBER_OF):
        for key, value in await _all_rows(backend, space):
            outer, end = decode_element(key)
            inner, _ = decode_element(key, end)
            if not (_fits(str(outer)) and _fits(str(inner))):
                found.append((space, key, value))
    return found


async def _all_rows(backend: Backend, space: str) -> list[tuple[bytes, bytes]]:
    return [row async for rows in scan_pages(backend, space, page=PAGE) for row in rows]


def _old_grant(key: bytes, value: bytes) -> tuple[str, bytes, tuple[str, bytes, str]] | None:
    """(principal, 0.1 digest, stored value) if ``key`` is a 0.1 grant key, else None."""
    model, encoded, role = msgpack.unpackb(value)
    digest = object_id(model, encoded)[1:]
    cut = len(key) - len(digest) - len(encode_str(role))
    if cut <= 0:
        return None
    try:
        principal, end = decode_element(key[:cut])
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    if end != cut or not isinstance(principal, str):
        return None
    if key != encode_str(principal) + digest + encode_str(role):
        return None
    return principal, digest, (model, encoded, role)
