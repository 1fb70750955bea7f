"""Transactions on every backend: all-or-nothing, own writes visible, conflicts refused,
constraints planned inside the transaction, cancellation before the commit applies nothing."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

import netabase

from .auto_models import AUTO_MODELS, Memo, Ticket
from .tx_models import TX_MODELS, Balance, Customer, Doctor, Order


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=TX_MODELS) as database:
        yield database


async def _fund(db: netabase.Database, **balances: int) -> None:
    await db.store(Balance).insert_many(Balance(k, v) for k, v in balances.items())


async def test_a_committed_transaction_applies_every_write(db: netabase.Database) -> None:
    await _fund(db, a=100, b=0)
    async with db.transaction() as tx:
        accounts = tx.store(Balance)
        a = await accounts.get("a")
        b = await accounts.get("b")
        assert a is not None and b is not None
        await accounts.insert(attrs.evolve(a, cents=a.cents - 10))
        await accounts.insert(attrs.evolve(b, cents=b.cents + 10))
        assert await accounts.get("a") == Balance("a", 90)  # its own write
        assert await db.store(Balance).get("a") == Balance("a", 100)  # not yet applied
    assert await db.store(Balance).get_many(["a", "b"]) == [Balance("a", 90), Balance("b", 10)]


async def test_an_exception_in_the_block_discards_everything(db: netabase.Database) -> None:
    await _fund(db, a=100)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.store(Balance).insert(Balance("a", 0))
            await tx.store(Balance).insert(Balance("new", 5))
            raise RuntimeError("changed my mind")
    assert await db.store(Balance).get("a") == Balance("a", 100)
    assert await db.store(Balance).get("new") is None


async def test_a_lost_update_is_refused(db: netabase.Database) -> None:
    await _fund(db, a=100)
    with pytest.raises(netabase.TransactionConflict, match="Balance key 'a'"):
        async with db.transaction() as tx:
            a = await tx.store(Balance).get("a")
            assert a is not None
            await db.store(Balance).insert(Balance("a", 500))  # someone else, meanwhile
            await tx.store(Balance).insert(attrs.evolve(a, cents=a.cents + 1))
    assert await db.store(Balance).get("a") == Balance("a", 500)


async def test_write_skew_is_refused_for_one_of_the_two(db: netabase.Database) -> None:
    await db.store(Doctor).insert_many([Doctor("alice"), Doctor("bob")])
    both_read = [trio.Event(), trio.Event()]
    outcomes: dict[str, str] = {}

    async def go_off_call(me: str, index: int) -> None:
        try:
            async with db.transaction() as tx:
                on_call = [d async for d in tx.store(Doctor).scan() if d.on_call]
                both_read[index].set()
                for event in both_read:
                    await event.wait()
                if len(on_call) >= 2:  # someone else is still on call
                    await tx.store(Doctor).insert(Doctor(me, on_call=False))
            outcomes[me] = "committed"
        except netabase.TransactionConflict:
            outcomes[me] = "conflict"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(go_off_call, "alice", 0)
        nursery.start_soon(go_off_call, "bob", 1)
    assert sorted(outcomes.values()) == ["committed", "conflict"]
    assert [d.on_call async for d in db.store(Doctor).scan()].count(True) == 1


async def test_a_phantom_in_a_scanned_range_is_a_conflict(db: netabase.Database) -> None:
    await _fund(db, a=1, b=2)
    with pytest.raises(netabase.TransactionConflict, match="range"):
        async with db.transaction() as tx:
            total = sum([r.cents async for r in tx.store(Balance).scan()])
            await db.store(Balance).insert(Balance("c", 3))  # appears in the range read
            await tx.store(Balance).insert(Balance("total", total))
    assert await db.store(Balance).get("total") is None


async def test_count_and_scan_see_the_transactions_own_writes(db: netabase.Database) -> None:
    await _fund(db, a=1, b=2, c=3)
    async with db.transaction() as tx:
        store = tx.store(Balance)
        await store.remove("b")
        await store.insert(Balance("d", 4))
        assert await store.count() == 3
        assert [r.id async for r in store.scan()] == ["a", "c", "d"]
        assert [r.id async for r in store.scan(reverse=True, limit=2)] == ["d", "c"]
        assert await store.contains("b") is False
        assert await store.get_many(["a", "b", "d"]) == [Balance("a", 1), None, Balance("d", 4)]
    assert await db.store(Balance).count() == 3


async def test_a_customer_and_their_first_order_commit_together(db: netabase.Database) -> None:
    async with db.transaction() as tx:
        await tx.store(Customer).insert(Customer("c1", "c1@example.com"))
        await tx.store(Order).insert(Order(7, "c1", 10))
    assert await db.store(Order).get(7) == Order(7, "c1", 10)
    assert [r.key for r in await db.store(Customer).referrers("c1")] == [7]


async def test_links_are_checked_inside_the_transaction(db: netabase.Database) -> None:
    with pytest.raises(netabase.LinkViolation, match="missing"):
        async with db.transaction() as tx:
            await tx.store(Order).insert(Order(1, "missing"))
    async with db.transaction() as tx:  # a failed write leaves the transaction usable
        with pytest.raises(netabase.LinkViolation):
            await tx.store(Order).insert(Order(1, "missing"))
        await tx.store(Customer).insert(Customer("c2"))
    assert await db.store(Customer).get("c2") == Customer("c2")
    assert await db.store(Order).get(1) is None


async def test_unique_values_are_claimed_inside_the_transaction(db: netabase.Database) -> None:
    await db.store(Customer).insert(Customer("c1", "same@example.com"))
    async with db.transaction() as tx:
        with pytest.raises(netabase.ValidationError, match="unique"):
            await tx.store(Customer).insert(Customer("c2", "same@example.com"))
        # Released and taken again within one transaction:
        await tx.store(Customer).insert(Customer("c1", "other@example.com"))
        await tx.store(Customer).insert(Customer("c2", "same@example.com"))
    assert await db.store(Customer).get("c2") == Customer("c2", "same@example.com")


async def test_a_cascade_is_planned_and_committed_in_the_transaction(
    db: netabase.Database,
) -> None:
    await db.store(Customer).insert(Customer("c1"))
    await db.store(Order).insert_many([Order(1, "c1"), Order(2, "c1")])
    async with db.transaction() as tx:
        assert await tx.store(Customer).remove("c1") is True
        assert await tx.store(Order).get(1) is None  # the cascade is visible inside
        assert await db.store(Order).get(1) == Order(1, "c1")  # and nowhere else yet
    assert await db.store(Order).count() == 0
    assert await db.store(Customer).get("c1") is None


async def test_a_referrer_added_concurrently_makes_the_cascade_conflict(
    db: netabase.Database,
) -> None:
    await db.store(Customer).insert(Customer("c1"))
    with pytest.raises(netabase.TransactionConflict):
        async with db.transaction() as tx:
            await tx.store(Customer).remove("c1")
            await db.store(Order).insert(Order(9, "c1"))  # would dangle after the commit
    assert await db.store(Order).get(9) == Order(9, "c1")
    assert await db.store(Customer).get("c1") == Customer("c1")


async def test_cached_reads_see_a_committed_transaction(db: netabase.Database) -> None:
    await _fund(db, a=1)
    assert await db.store(Balance).get("a") == Balance("a", 1)  # now cached
    async with db.transaction() as tx:
        await tx.store(Balance).insert(Balance("a", 2))
    assert await db.store(Balance).get("a") == Balance("a", 2)


async def test_update_inside_a_transaction(db: netabase.Database) -> None:
    async with db.transaction() as tx:
        first = await tx.store(Balance).update("x", lambda old: Balance("x", 1))
        second = await tx.store(Balance).update(
            "x", lambda old: attrs.evolve(old, cents=old.cents + 1)
        )
        assert (first, second) == (Balance("x", 1), Balance("x", 2))

        async def coroutine(old: Balance | None) -> Balance:
            return Balance("x")

        with pytest.raises(netabase.ValidationError, match="plain function"):
            await tx.store(Balance).update("x", coroutine)  # type: ignore[arg-type]
        with pytest.raises(netabase.ValidationError, match="changed the key"):
            await tx.store(Balance).update("x", lambda old: Balance("y"))
    assert await db.store(Balance).get("x") == Balance("x", 2)


async def test_transact_retries_until_every_increment_lands(db: netabase.Database) -> None:
    await _fund(db, hits=0)

    async def increment(tx: netabase.Transaction, key: str) -> int:
        record = await tx.store(Balance).get(key)
        assert record is not None
        await trio.lowlevel.checkpoint()  # let the others read the same value
        await tx.store(Balance).insert(attrs.evolve(record, cents=record.cents + 1))
        return record.cents + 1

    async with trio.open_nursery() as nursery:
        for _ in range(32):
            for _ in range(4):
                nursery.start_soon(functools.partial(db.transact, increment, "hits", retries=1000))
    assert await db.store(Balance).get("hits") == Balance("hits", 128)


async def test_nested_transactions_are_refused(db: netabase.Database) -> None:
    async with db.transaction():
        with pytest.raises(netabase.TransactionError, match="inside a transaction"):
            async with db.transaction():
                pass


async def test_a_finished_transaction_cannot_be_used(db: netabase.Database) -> None:
    async with db.transaction() as tx:
        store = tx.store(Balance)
    with pytest.raises(netabase.TransactionError, match="committed"):
        await store.get("a")
    with pytest.raises(netabase.TransactionError, match="async with"):
        await db.transaction().store(Balance).get("a")


async def test_too_large_a_transaction_is_refused(backend_url: str) -> None:
    async with netabase.open(backend_url, models=TX_MODELS, max_transaction_size=5) as db:
        with pytest.raises(netabase.TransactionTooLarge, match="6 writes"):
            async with db.transaction() as tx:
                await tx.store(Balance).insert_many(Balance(str(i)) for i in range(6))
        assert await db.store(Balance).count() == 0
        # Refused before it is planned: no link is checked for a call that cannot fit.
        with pytest.raises(netabase.TransactionTooLarge, match="6 writes"):
            async with db.transaction() as tx:
                await tx.store(Order).insert_many(Order(i, "nobody") for i in range(6))


async def test_a_transaction_past_its_deadline_is_discarded(
    backend_url: str, mock_clock: trio.testing.MockClock
) -> None:
    async with netabase.open(backend_url, models=TX_MODELS, transaction_timeout=1.0) as db:
        with pytest.raises(netabase.TransactionTimeout):
            async with db.transaction() as tx:
                await tx.store(Balance).insert(Balance("late"))
                mock_clock.jump(2)
        assert await db.store(Balance).get("late") is None


async def test_cancelled_before_the_commit_applies_nothing(db: netabase.Database) -> None:
    with trio.move_on_after(10) as scope:
        async with db.transaction() as tx:
            await tx.store(Balance).insert(Balance("a", 1))
            scope.cancel()
            await trio.lowlevel.checkpoint()  # cancelled here, inside the block
    assert scope.cancelled_caught
    assert await db.store(Balance).get("a") is None


async def test_the_commit_is_shielded_once_it_started(db: netabase.Database) -> None:
    with trio.CancelScope() as scope:
        async with db.transaction() as tx:
            await tx.store(Balance).insert(Balance("a", 1))
            scope.cancel()  # pending: the next checkpoint is the commit, which is shielded
    assert await db.store(Balance).get("a") == Balance("a", 1)


async def test_a_transaction_of_a_closed_database_is_refused(backend_url: str) -> None:
    async with netabase.open(backend_url, models=TX_MODELS) as db:
        tx = db.transaction()
    with pytest.raises(netabase.Closed, match="transaction"):
        async with tx:
            await tx.store(Balance).get("a")


async def test_if_absent_inside_a_transaction(db: netabase.Database) -> None:
    await _fund(db, a=1)
    async with db.transaction() as tx:
        with pytest.raises(netabase.AlreadyExists, match="Balance key 'a'"):
            await tx.store(Balance).insert(Balance("a", 2), if_absent=True)
        await tx.store(Balance).insert(Balance("b", 2), if_absent=True)
        with pytest.raises(netabase.AlreadyExists, match="'b'"):  # its own write counts
            await tx.store(Balance).insert_many([Balance("b", 3)], if_absent=True)
    assert await db.store(Balance).get_many(["a", "b"]) == [Balance("a", 1), Balance("b", 2)]


async def test_generated_keys_inside_a_transaction(backend_url: str) -> None:
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        async with db.transaction() as tx:
            first = await tx.store(Ticket).insert(Ticket(title="a"))
            more = await tx.store(Ticket).insert_many([Ticket(title="b"), Ticket(title="c")])
            memo = await tx.store(Memo).insert(Memo(text="m"))
            assert await tx.store(Ticket).get(first.id) == first
        keys = [first.id, *(t.id for t in more)]
        assert len(set(keys)) == 3
        assert await db.store(Ticket).get_many(keys) == [first, *more]
        assert await db.store(Memo).get(memo.id) == memo


async def test_transactions_of_two_databases_may_nest(tmp_path: Path) -> None:
    """Nesting is refused per database: a transaction on another database is independent."""
    async with (
        netabase.open("memory://", models=TX_MODELS) as first,
        netabase.open(f"lmdb://{tmp_path / 'other'}", models=TX_MODELS) as second,
    ):
        async with first.transaction() as a:
            await a.store(Balance).insert(Balance("a", 1))
            async with second.transaction() as b:
                await b.store(Balance).insert(Balance("b", 2))
            with pytest.raises(netabase.TransactionError, match="inside a transaction"):
                async with first.transaction():
                    pass
        assert await first.store(Balance).get("a") == Balance("a", 1)
        assert await second.store(Balance).get("b") == Balance("b", 2)
