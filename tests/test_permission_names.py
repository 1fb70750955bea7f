"""Principal names are whole key components: no name reaches into a longer one, on every backend.

``encode_str("alice")`` is a byte prefix of ``encode_str("alice\\x00x")``, so every look-up by
name must stop at the end of the name. Names are also bounded so that every permission key
composed of them fits a backend key, and one bad write never fails the others of its batch.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator

import pytest

import netabase
from netabase._keys import encode_str
from netabase.actors._permission_spaces import MAX_NAME_KEY

from .perm_models import PERM_MODELS, Document, Organization

_examples = itertools.count()


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=PERM_MODELS) as database:
        yield database


def at_limit(base: str) -> str:
    """``base`` padded to the longest name a principal may have."""
    return base + "a" * (MAX_NAME_KEY - len(encode_str(base)))


async def test_a_member_with_a_longer_name_gives_nothing_to_the_shorter(
    db: netabase.Database,
) -> None:
    p = db.permissions
    await p.add_member("admins", "alice\x00x")
    await p.grant("admins", Document, "secret", "read")
    assert await p.check("alice\x00x", "read", Document, "secret")
    assert not await p.check("alice", "read", Document, "secret")
    assert [k async for k in p.list_objects("alice", "read", Document)] == []


async def test_a_grant_to_a_longer_name_is_not_listed_for_the_shorter(
    db: netabase.Database,
) -> None:
    p = db.permissions
    await p.grant("bob\x00y", Document, "secret", "write")
    assert not await p.check("bob", "write", Document, "secret")
    assert [k async for k in p.list_objects("bob", "write", Document)] == []
    assert [k async for k in p.list_objects("bob\x00y", "write", Document)] == ["secret"]
    assert await p.revoke("bob", Document, "secret") == 0
    assert await p.check("bob\x00y", "write", Document, "secret")


async def test_a_longer_name_is_no_membership_cycle(db: netabase.Database) -> None:
    p = db.permissions
    await p.add_member("top", "g\x00x")
    await p.add_member("g", "top")  # refused as a cycle, or re-planned until WriteConflict
    await p.grant("g", Organization, "acme", "read")
    assert await p.check("top", "read", Organization, "acme")
    assert await p.check("g\x00x", "read", Organization, "acme")
    with pytest.raises(netabase.HierarchyCycle):
        await p.add_member("g\x00x", "g")


async def test_grants_on_every_object_id_are_found(db: netabase.Database) -> None:
    # An object id whose digest starts with 0xff once read as an escaped NUL after the name.
    key = next(
        f"k{i}"
        for i in itertools.count()
        if hashlib.blake2b(b"Organization\x00" + encode_str(f"k{i}"), digest_size=16).digest()[0]
        == 0xFF
    )
    p = db.permissions
    await p.grant("carol", Organization, key, "read")
    assert [k async for k in p.list_objects("carol", "read", Organization)] == [key]
    assert await p.revoke("carol", Organization, key) == 1
    assert not await p.check("carol", "read", Organization, key)
