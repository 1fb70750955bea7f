"""Adversarial review of transactions (issue 14): each test is a problem found, then fixed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

import netabase

from .perm_models import PERM_MODELS, Department, Document, Organization, Project
from .tx_models import TX_MODELS, Balance, Customer, Order


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=TX_MODELS) as database:
        yield database


async def test_a_link_to_a_record_removed_earlier_in_the_transaction_is_refused(
    db: netabase.Database,
) -> None:
    await db.store(Customer).insert(Customer("c"))
    async with db.transaction() as tx:
        await tx.store(Order).insert(Order(1, "c"))  # c checked (and remembered) as existing
        assert await tx.store(Customer).remove("c")  # cascades order 1
        with pytest.raises(netabase.LinkViolation, match="Customer key 'c'"):
            await tx.store(Order).insert(Order(2, "c"))
    assert await db.store(Customer).get("c") is None
    assert await db.store(Order).get_many([1, 2]) == [None, None]


async def test_scan_with_limit_sees_own_puts_and_deletes_at_page_edges(
    db: netabase.Database,
) -> None:
    await db.store(Balance).insert_many(Balance(k) for k in "bdfh")
    async with db.transaction() as tx:
        balances = tx.store(Balance)
        await balances.insert(Balance("a"))
        await balances.remove("d")
        await balances.insert(Balance("z"))
        forward = [b.id async for b in balances.scan(limit=3, page_size=2)]
        backward = [b.id async for b in balances.scan(limit=3, page_size=2, reverse=True)]
        everything = [b.id async for b in balances.scan(page_size=1)]
        assert forward == ["a", "b", "f"]
        assert backward == ["z", "h", "f"]
        assert everything == ["a", "b", "f", "h", "z"]
        assert await balances.count() == 5


async def test_a_phantom_past_a_limited_scan_page_is_not_a_conflict_but_inside_is(
    db: netabase.Database,
) -> None:
    await db.store(Balance).insert_many(Balance(k) for k in "bdf")
    async with db.transaction() as tx:
        assert [b.id async for b in tx.store(Balance).scan(limit=1)] == ["b"]
        await db.store(Balance).insert(Balance("e"))  # outside what it read
        await tx.store(Balance).insert(Balance("x"))
    with pytest.raises(netabase.TransactionConflict):
        async with db.transaction() as tx:
            assert [b.id async for b in tx.store(Balance).scan(limit=2)] == ["b", "d"]
            await db.store(Balance).insert(Balance("c"))  # a phantom inside it
            await tx.store(Balance).insert(Balance("y"))


async def test_contains_then_get_conflicts_on_a_value_change(db: netabase.Database) -> None:
    await db.store(Balance).insert(Balance("a", 1))
    with pytest.raises(netabase.TransactionConflict):
        async with db.transaction() as tx:
            assert await tx.store(Balance).contains("a")
            got = await tx.store(Balance).get_many(["a", "a"])
            assert got == [Balance("a", 1), Balance("a", 1)]
            await db.store(Balance).insert(Balance("a", 2))
            await tx.store(Balance).insert(Balance("b", got[0].cents if got[0] else 0))


def test_a_blocking_transaction_that_fails_to_begin_does_not_block_the_thread(
    tmp_path: Path,
) -> None:
    with netabase.connect_sync(f"lmdb://{tmp_path / 'db'}", models=TX_MODELS) as db:
        tx = db.transaction()
        with tx:
            tx.store(Balance).insert(Balance("a", 1))
        with pytest.raises(netabase.TransactionError, match="entered once"), tx:
            pass
        with db.transaction() as again:  # not "inside a transaction"
            again.store(Balance).insert(Balance("b", 2))
        assert db.store(Balance).get_many(["a", "b"]) == [Balance("a", 1), Balance("b", 2)]


def test_an_asyncio_transaction_that_fails_to_begin_does_not_block_the_task() -> None:
    async def main() -> None:
        async with netabase.open_asyncio("memory://", models=TX_MODELS) as db:
            tx = db.transaction()
            async with tx:
                await tx.store(Balance).insert(Balance("a", 1))
            with pytest.raises(netabase.TransactionError, match="entered once"):
                async with tx:
                    pass
            async with db.transaction() as again:
                await again.store(Balance).insert(Balance("b", 2))
            assert await db.store(Balance).get("b") == Balance("b", 2)

    asyncio.run(main())


async def test_a_transaction_cancelled_as_it_begins_does_not_block_the_task(
    db: netabase.Database,
) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        async with db.transaction() as tx:
            await tx.store(Balance).insert(Balance("a", 1))
    async with db.transaction() as tx:  # not "inside a transaction"
        await tx.store(Balance).insert(Balance("b", 2))
    assert await db.store(Balance).get_many(["a", "b"]) == [None, Balance("b", 2)]


@pytest.fixture
async def pdb(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=PERM_MODELS) as database:
        await database.store(Organization).insert(Organization("acme"))
        await database.store(Department).insert_many(
            [Department("eng", "acme"), Department("hr", "acme")]
        )
        await database.store(Project).insert_many([Project("p1", "eng"), Project("secret", "hr")])
        await database.store(Document).insert_many(
            [Document("d1", "p1"), Document("s1", "secret", author="CONFIDENTIAL")]
        )
        await database.permissions.grant("ann", Department, "eng", "write")
        yield database


async def test_an_enforced_read_never_hands_out_a_version_the_principal_could_never_read(
    pdb: netabase.Database,
) -> None:
    # s1 is sanitized, then published by moving its project under eng: its old content was
    # never readable by ann, though the snapshot still holds it and its ancestors now allow.
    ann = pdb.as_principal("ann")
    for read in ("get", "get_many", "scan"):
        await pdb.store(Project).insert(Project("secret", "hr"))
        await pdb.store(Document).insert(Document("s1", "secret", author="CONFIDENTIAL"))
        seen: list[Document | None] = []
        with contextlib.suppress(netabase.TransactionConflict):
            async with ann.transaction() as tx:
                docs = tx.store(Document)
                await docs.get("d1")  # the snapshot is taken
                await pdb.store(Document).insert(Document("s1", "secret", author="sanitized"))
                await pdb.store(Project).insert(Project("secret", "eng"))
                if read == "get":
                    seen.append(await docs.get("s1"))
                elif read == "get_many":
                    seen.extend(await docs.get_many(["s1", "d1"]))
                else:
                    seen.extend([d async for d in docs.scan()])
        assert all(d is None or d.author != "CONFIDENTIAL" for d in seen), read
    async with ann.transaction() as tx:  # a fresh snapshot reads what is there now
        assert await tx.store(Document).get("s1") == Document("s1", "secret", author="sanitized")


def test_an_asyncio_write_cancelled_midway_is_never_committed_behind_the_callers_back() -> None:
    # A cancelled crossing may have staged its write in trio before the cancel got there: the
    # caller saw it fail, so the transaction must not commit it.
    async def main() -> None:
        async with netabase.open_asyncio("memory://", models=TX_MODELS, bridge="guest") as db:
            cancelled = ghosts = 0
            for i in range(200):
                failed = False
                try:
                    async with db.transaction() as tx:
                        await tx.store(Balance).get("a")
                        try:
                            insert = tx.store(Balance).insert(Balance(f"k{i}"))
                            await asyncio.wait_for(insert, timeout=(i % 20) * 0.0001)
                        except TimeoutError:
                            failed = True
                except netabase.TransactionError:
                    assert failed
                    cancelled += 1
                    continue
                if failed:
                    cancelled += 1
                    ghosts += await db.store(Balance).get(f"k{i}") is not None
            assert cancelled > 0
            assert ghosts == 0

    asyncio.run(main())


@pytest.mark.parametrize("first", ["get", "contains"])
@pytest.mark.parametrize("start", ["absent", "present"])
async def test_two_different_answers_for_one_key_never_commit(
    db: netabase.Database, first: str, start: str
) -> None:
    # Without a snapshot (Redis) a transaction reading a key twice can get two answers: no
    # state at the commit matches both, so the commit must be refused.
    balances = db.store(Balance)
    if start == "present":
        await balances.insert(Balance("x", 1))

    async def flip() -> None:
        if start == "absent":
            await balances.insert(Balance("x", 1))
        else:
            await balances.remove("x")

    async def read(tx: netabase.Transaction) -> object:
        if first == "get":
            return await tx.store(Balance).get("x")
        return await tx.store(Balance).contains("x")

    answers: list[object] = []
    committed = False
    with contextlib.suppress(netabase.TransactionConflict):
        async with db.transaction() as tx:
            answers.append(await read(tx))
            await flip()
            answers.append(await read(tx))
            await balances.remove("x")  # absent at the commit, whichever answer that matches
            await tx.store(Balance).insert(Balance("y"))
        committed = True
    if committed:
        assert answers[0] == answers[1]
