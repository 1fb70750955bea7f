"""Grants written by netabase 0.1 (raw-digest object ids) still count after an upgrade, once."""

from __future__ import annotations

import hashlib
import logging

import msgpack
import pytest
import trio

import netabase
from netabase._keys import encode_str
from netabase.actors._permission_spaces import (
    GRANTS,
    LAYOUT,
    LAYOUT_VERSION,
    MEMBER_OF,
    MEMBERS,
    META,
    OBJECTS,
    membership_key,
)
from netabase.backends import Put, WriteBatch, open_backend

from .perm_models import PERM_MODELS, Document


def _digest(model: str, key: bytes) -> bytes:
    """0.1's object id: the bare BLAKE2b digest, no element type code."""
    return hashlib.blake2b(model.encode() + b"\x00" + key, digest_size=16).digest()


def _encoded(key: str) -> bytes:
    info = netabase.info_of(Document)
    assert info is not None
    return info.encode_key(key)


def _a_key_whose_digest_starts_with_ff() -> str:
    return next(
        k for k in (f"d{i}" for i in range(5000)) if _digest("Document", _encoded(k))[0] == 0xFF
    )


async def _write_old_grants(url: str, grants: list[tuple[str, str, str]]) -> None:
    """Rows as 0.1 wrote them: GRANTS principal|digest|role, OBJECTS digest|principal|role."""
    backend = open_backend(url)
    await backend.start([GRANTS, OBJECTS, META])
    ops = []
    for principal, key, role in grants:
        digest = _digest("Document", _encoded(key))
        ops.append(
            Put(
                GRANTS,
                encode_str(principal) + digest + encode_str(role),
                msgpack.packb(("Document", _encoded(key), role)),
            )
        )
        ops.append(
            Put(
                OBJECTS,
                digest + encode_str(principal) + encode_str(role),
                msgpack.packb((principal, role)),
            )
        )
    try:
        await backend.apply([WriteBatch(tuple(ops))])
    finally:
        await backend.aclose()


async def test_grants_of_an_older_release_are_rekeyed_at_open(reopenable: str) -> None:
    shy = _a_key_whose_digest_starts_with_ff()
    await _write_old_grants(
        reopenable, [("alice", "plain", "read"), ("alice", shy, "write"), ("bob\x00x", shy, "read")]
    )
    async with netabase.open(reopenable, models=PERM_MODELS) as db:
        p = db.permissions
        assert await p.check("alice", "read", Document, "plain")
        assert await p.check("alice", "write", Document, shy)
        assert await p.check("bob\x00x", "read", Document, shy)
        assert not await p.check("bob", "read", Document, shy)
        assert sorted([k async for k in p.list_objects("alice", "read", Document)]) == sorted(
            ["plain", shy]
        )
        assert await p.revoke("alice", Document, shy) == 1
        assert not await p.check("alice", "write", Document, shy)
        _, (mark,) = await db.backend.read(META, [LAYOUT])
        assert mark == LAYOUT_VERSION
        rows = await db.backend.scan(GRANTS, b"", None, limit=100)
        assert len(rows) == 2  # re-keyed in place, none left in the old form
    async with netabase.open(reopenable, models=PERM_MODELS) as db:  # nothing moves twice
        assert await db.permissions.check("bob\x00x", "read", Document, shy)


async def test_two_openers_of_an_older_database_upgrade_it_once(reopenable: str) -> None:
    await _write_old_grants(reopenable, [(f"user{i}", "doc", "read") for i in range(50)])
    answers: list[bool] = []

    async def open_and_check() -> None:
        async with netabase.open(reopenable, models=PERM_MODELS) as db:
            answers.append(await db.permissions.check("user7", "read", Document, "doc"))
            rows = await db.backend.scan(GRANTS, b"", None, limit=1000)
            assert len(rows) == 50

    if reopenable.startswith("lmdb"):  # one LMDB environment per process: open it in turn
        await open_and_check()
        await open_and_check()
    else:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_and_check)
            nursery.start_soon(open_and_check)
    assert answers == [True, True]


async def test_rows_whose_names_exceed_todays_limit_are_dropped_with_a_warning(
    reopenable: str, caplog: pytest.LogCaptureFixture
) -> None:
    """0.1 bounded names at 200 UTF-8 bytes; a NUL now takes two, so "\\x00" * 200 can never be
    checked or revoked again: its grant and memberships go, and the warning says so."""
    heavy = "\x00" * 200
    await _write_old_grants(reopenable, [(heavy, "doc", "read"), ("ann", "doc", "read")])
    backend = open_backend(reopenable)
    await backend.start([MEMBERS, MEMBER_OF])
    try:
        await backend.apply(
            [
                WriteBatch(
                    (
                        Put(MEMBERS, membership_key("staff", heavy), msgpack.packb(heavy)),
                        Put(MEMBER_OF, membership_key(heavy, "staff"), msgpack.packb("staff")),
                        Put(MEMBERS, membership_key("staff", "ann"), msgpack.packb("ann")),
                        Put(MEMBER_OF, membership_key("ann", "staff"), msgpack.packb("staff")),
                    )
                )
            ]
        )
    finally:
        await backend.aclose()
    with caplog.at_level(logging.WARNING, logger="netabase.permissions"):
        async with netabase.open(reopenable, models=PERM_MODELS) as db:
            assert await db.permissions.check("ann", "read", Document, "doc")
            assert len(await db.backend.scan(GRANTS, b"", None, limit=10)) == 1
            assert len(await db.backend.scan(MEMBERS, b"", None, limit=10)) == 1
            assert len(await db.backend.scan(MEMBER_OF, b"", None, limit=10)) == 1
    assert "dropped a grant of 'read' on a Document record" in caplog.text
    assert "dropped 2 membership rows" in caplog.text
