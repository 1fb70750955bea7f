"""``db.as_principal(p).transaction()``: every read and write judged, judgements part of what
the commit is conditioned on, errors that name only records the principal may read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import netabase

from .perm_models import PERM_MODELS, Department, Document, Organization, Project


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=PERM_MODELS) as database:
        await database.store(Organization).insert(Organization("acme"))
        await database.store(Department).insert_many(
            [Department("eng", "acme"), Department("hr", "acme")]
        )
        await database.store(Project).insert_many([Project("p1", "eng"), Project("secret", "hr")])
        await database.store(Document).insert_many(
            [Document("d1", "p1"), Document("d2", "p1"), Document("s1", "secret")]
        )
        await database.permissions.grant("ann", Department, "eng", "write")
        yield database


async def test_reads_and_writes_are_judged(db: netabase.Database) -> None:
    ann = db.as_principal("ann")
    async with ann.transaction() as tx:
        docs = tx.store(Document)
        assert await docs.get("d1") == Document("d1", "p1")
        await docs.insert(Document("d3", "p1", author="ann"))
        with pytest.raises(netabase.PermissionDenied, match="may not 'read' Document key 's1'"):
            await docs.get("s1")
        with pytest.raises(netabase.PermissionDenied, match="write"):
            await docs.insert(Document("s2", "secret"))
        assert await docs.contains("s1") is False  # unreadable answers like missing
        assert [d.id async for d in docs.scan()] == ["d1", "d2", "d3"]
        assert await docs.count() == 3
    assert await db.store(Document).get("d3") == Document("d3", "p1", author="ann")
    assert await db.store(Document).get("s2") is None


async def test_a_grant_revoked_before_the_commit_refuses_it(db: netabase.Database) -> None:
    ann = db.as_principal("ann")
    with pytest.raises(netabase.TransactionConflict) as caught:
        async with ann.transaction() as tx:
            await tx.store(Document).insert(Document("d9", "p1"))
            await db.permissions.revoke("ann", Department, "eng", "write")
    assert "d9" not in str(caught.value)
    assert await db.store(Document).get("d9") is None


async def test_a_removal_is_judged_on_its_cascade(db: netabase.Database) -> None:
    await db.permissions.grant("bob", Project, "p1", "write")
    bob = db.as_principal("bob")
    async with bob.transaction() as tx:
        assert await tx.store(Document).remove("d1") is True
    with pytest.raises(netabase.PermissionDenied, match="write"):
        async with bob.transaction() as tx:
            await tx.store(Department).remove("eng")  # would cascade into what bob may not write
    assert await db.store(Department).get("eng") == Department("eng", "acme")
    assert await db.store(Document).get("d1") is None


async def test_transact_as_a_principal_retries(db: netabase.Database) -> None:
    ann = db.as_principal("ann")

    async def rename(tx: netabase.Transaction, key: str, author: str) -> None:
        doc = await tx.store(Document).get(key)
        assert doc is not None
        await tx.store(Document).insert(Document(doc.id, doc.project, author=author))

    await ann.transact(rename, "d2", "ann")
    assert await db.store(Document).get("d2") == Document("d2", "p1", author="ann")
    with pytest.raises(netabase.PermissionDenied):
        await db.as_principal("eve").transact(rename, "d2", "eve")
