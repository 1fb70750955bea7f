"""An adversarial review of per-record versions, conditional inserts and `update`: each test
pins a defect found (and fixed) or a property that held under attack, on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import outcome
import pytest
import trio
import trio.testing

import netabase
from netabase._update import run_update
from netabase.backends import Put, WriteBatch
from netabase.backends.redis import RedisBackend

from .conftest import make_url
from .versions_models import Counter, Profile


@netabase.model(key="name")
@attrs.define
class Tally:
    """A mutable model: an update function may change its input in place."""

    name: str
    n: int = 0


@netabase.model(key="sku")
@attrs.frozen
class Item:
    sku: str


@netabase.model(key="id")
@attrs.frozen
class Slot:
    id: int
    n: int = 0
    item: str | None = netabase.link(Item, required=False, on_delete="set_null")


MODELS = [Counter, Profile, Tally, Item, Slot]


@pytest.fixture
async def db(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[netabase.Database]:
    server = request.getfixturevalue("redis_server") if backend_kind == "redis" else None
    url = make_url(backend_kind, tmp_path, server)
    url = f"{url}?sync=false" if backend_kind == "lmdb" else url
    async with netabase.open(url, models=MODELS) as database:
        yield database


async def queued_updates(
    store: netabase.Store[Any], key: Any, fns: list[Callable[[Any], Any]]
) -> list[outcome.Outcome[Any]]:
    """Run ``store.update(key, fn)`` for each of ``fns``, all queued, in this order, behind an
    update that waits at its read: they are then served together, as one combined write."""
    info = netabase.info_of(store.model)
    assert info is not None
    gate = trio.Event()

    async def gated(wanted: Any) -> tuple[Any, int]:
        await gate.wait()
        return await store.get_versioned(wanted)

    results: dict[int, outcome.Outcome[Any]] = {}

    async def one(index: int, fn: Callable[[Any], Any]) -> None:
        results[index] = await outcome.acapture(store.update, key, fn)

    queues = store._routes.update_queues
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_update, queues, info, key, lambda old: old, 0, gated, store.insert)
        await trio.testing.wait_all_tasks_blocked()
        for index, fn in enumerate(fns):
            nursery.start_soon(one, index, fn)
            await trio.testing.wait_all_tasks_blocked()
        gate.set()
    return [results[index] for index in range(len(fns))]


# combined updates: each caller's record is judged as if written alone


async def test_a_combined_update_refused_for_a_unique_value_fails_only_its_caller(
    db: netabase.Database,
) -> None:
    profiles = db.store(Profile)
    await profiles.insert_many([Profile(1, "a@x"), Profile(2, "taken@x")])
    fine, taken = await queued_updates(
        profiles,
        1,
        [
            lambda old: attrs.evolve(old, email="new@x"),
            lambda old: attrs.evolve(old, email="taken@x"),
        ],
    )
    assert fine.unwrap() == Profile(1, "new@x")
    with pytest.raises(netabase.ValidationError, match="taken@x"):
        taken.unwrap()
    assert await profiles.get(1) == Profile(1, "new@x")


async def test_a_combined_update_never_reports_a_record_that_could_not_be_stored(
    db: netabase.Database,
) -> None:
    profiles = db.store(Profile)
    await profiles.insert_many([Profile(1, "a@x"), Profile(2, "taken@x")])
    taken, fine = await queued_updates(
        profiles,
        1,
        [
            lambda old: attrs.evolve(old, email="taken@x"),
            lambda old: attrs.evolve(old, email="new@x"),
        ],
    )
    with pytest.raises(netabase.ValidationError, match="taken@x"):
        taken.unwrap()
    assert fine.unwrap() == Profile(1, "new@x")
    assert await profiles.get(2) == Profile(2, "taken@x")


async def test_a_combined_update_with_a_dangling_link_fails_only_its_caller(
    db: netabase.Database,
) -> None:
    await db.store(Item).insert(Item("real"))
    slots = db.store(Slot)
    await slots.insert(Slot(1))
    dangling, fine = await queued_updates(
        slots,
        1,
        [
            lambda old: attrs.evolve(old, item="ghost"),
            lambda old: attrs.evolve(old, item="real", n=old.n + 1),
        ],
    )
    with pytest.raises(netabase.LinkViolation, match="ghost"):
        dangling.unwrap()
    assert fine.unwrap() == Slot(1, 1, "real")
    assert await slots.get(1) == Slot(1, 1, "real")


# combined updates: a function that changes its input in place


async def test_a_combined_update_that_mutates_its_input_then_raises_writes_none_of_it(
    db: netabase.Database,
) -> None:
    tallies = db.store(Tally)
    await tallies.insert(Tally("t"))

    def spoil(old: Tally) -> Tally:
        old.n += 100
        raise LookupError("changed my mind")

    first, spoiled, last = await queued_updates(
        tallies,
        "t",
        [lambda old: Tally("t", old.n + 1), spoil, lambda old: Tally("t", old.n + 1)],
    )
    with pytest.raises(LookupError):
        spoiled.unwrap()
    assert (first.unwrap(), last.unwrap()) == (Tally("t", 1), Tally("t", 2))
    assert await tallies.get("t") == Tally("t", 2)


async def test_each_combined_caller_keeps_its_own_record_when_a_later_one_mutates_it(
    db: netabase.Database,
) -> None:
    tallies = db.store(Tally)
    await tallies.insert(Tally("t"))

    def in_place(old: Tally) -> Tally:
        old.n += 10
        return old

    first, second = await queued_updates(
        tallies, "t", [lambda old: Tally("t", old.n + 1), in_place]
    )
    assert first.unwrap() == Tally("t", 1)
    assert second.unwrap() == Tally("t", 11)
    assert await tallies.get("t") == Tally("t", 11)


# if_absent with a key given twice


async def test_insert_many_if_absent_refuses_a_key_given_twice(db: netabase.Database) -> None:
    counters = db.store(Counter)
    with pytest.raises(netabase.AlreadyExists, match="Counter key 'a' is given twice"):
        await counters.insert_many([Counter("a", 1), Counter("b"), Counter("a", 2)], if_absent=True)
    assert await counters.count() == 0
    await db.permissions.grant("writer", Counter, "a", "write")
    await db.permissions.grant("writer", Counter, "b", "write")
    async with db.as_principal("writer") as writer:
        with pytest.raises(netabase.AlreadyExists, match="'a' is given twice"):
            await writer.store(Counter).insert_many([Counter("a"), Counter("a")], if_absent=True)
    async with db.transaction() as tx:
        with pytest.raises(netabase.AlreadyExists, match="'b' is given twice"):
            await tx.store(Counter).insert_many([Counter("b"), Counter("b")], if_absent=True)
    assert await counters.count() == 0
    await counters.insert_many([Counter("a", 1), Counter("a", 2)])  # no condition: the last wins
    assert await counters.get("a") == Counter("a", 2)


# versions under attack: properties that held


async def test_versions_grow_through_set_null_rewrites_and_transactions(
    db: netabase.Database,
) -> None:
    await db.store(Item).insert(Item("i"))
    slots = db.store(Slot)
    await slots.insert(Slot(1, 0, "i"))
    _, linked = await slots.get_versioned(1)
    await db.store(Item).remove("i")  # rewrites Slot 1 with item=None
    record, unlinked = await slots.get_versioned(1)
    assert record == Slot(1, 0, None) and unlinked > linked
    with pytest.raises(netabase.WriteConflict):
        await slots.insert(Slot(1, 5), if_version=linked)
    async with db.transaction() as tx:  # the key written twice in one commit
        await tx.store(Slot).insert(Slot(1, 1))
        await tx.store(Slot).insert(Slot(1, 2))
    record, committed = await slots.get_versioned(1)
    assert record == Slot(1, 2) and committed > unlinked
    assert await slots.update(1, lambda old: attrs.evolve(old, n=old.n + 1)) == Slot(1, 3)
    assert (await slots.get_versioned(1))[1] > committed


async def test_cancelled_updates_leave_the_queue_serving(db: netabase.Database) -> None:
    counters = db.store(Counter)
    await counters.insert(Counter("hits", 0))
    done: list[Counter] = []

    async def bump_once(scope_box: list[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            scope_box.append(scope)
            done.append(await counters.update("hits", lambda old: attrs.evolve(old, n=old.n + 1)))

    for victim in range(6):
        scopes: list[list[trio.CancelScope]] = [[] for _ in range(6)]
        async with trio.open_nursery() as nursery:
            for index in range(6):
                nursery.start_soon(bump_once, scopes[index])
            await trio.testing.wait_all_tasks_blocked()
            scopes[victim][0].cancel()
    assert not counters._routes.update_queues
    record = await counters.get("hits")
    assert record is not None and len(done) <= record.n <= 36
    assert await counters.update("hits", lambda old: attrs.evolve(old, n=0)) == Counter("hits")


def test_asyncio_wait_for_cancels_a_queued_update() -> None:
    import asyncio

    async def main() -> None:
        async with netabase.open_asyncio("memory://", models=MODELS) as adb:
            counters = adb.store(Counter)
            await counters.insert(Counter("hits", 0))

            async def bump() -> Counter:
                return await counters.update("hits", lambda old: attrs.evolve(old, n=old.n + 1))

            tasks = [asyncio.ensure_future(bump()) for _ in range(20)]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(bump(), timeout=0)
            results = await asyncio.gather(*tasks)
            seen = sorted(result.n for result in results)
            assert len(set(seen)) == 20 and seen[-1] <= 21
            record = await counters.get("hits")
            assert record is not None and 20 <= record.n <= 21
            assert (await counters.update("hits", lambda old: old)) == record

    asyncio.run(main())


async def test_a_present_record_never_reads_as_version_0(db: netabase.Database) -> None:
    """A record put without a stamp (by a raw backend write) is present: if_version=0, which
    means absent, must not overwrite it."""
    info = netabase.info_of(Counter)
    assert info is not None
    key, value = info.encode_record(Counter("raw", 1))
    await db.backend.apply([WriteBatch((Put(info.space, key, value),))])
    counters = db.store(Counter)
    record, version = await counters.get_versioned("raw")
    assert record == Counter("raw", 1) and version > 0
    with pytest.raises(netabase.WriteConflict, match="expected version 0"):
        await counters.insert(Counter("raw", 2), if_version=0)
    await counters.insert(Counter("raw", 3), if_version=version)
    assert (await counters.get_versioned("raw"))[1] > version


async def test_redis_versions_past_2_to_the_53_round_trip_through_the_store(
    backend_kind: str, db: netabase.Database
) -> None:
    if not isinstance(db.backend, RedisBackend):
        return  # a Redis property: the other backends count from 1
    info = netabase.info_of(Counter)
    assert info is not None
    huge = (1 << 60) + 1
    await db.backend._client.command("HSET", db.backend.prefix + b"versions", info.space, huge)
    counters = db.store(Counter)
    await counters.insert(Counter("big", 0))
    _, version = await counters.get_versioned("big")
    assert version > huge
    await counters.insert(Counter("big", 1), if_version=version)
    _, later = await counters.get_versioned("big")
    assert later > version
    with pytest.raises(netabase.WriteConflict, match=str(later)):
        await counters.insert(Counter("big", 2), if_version=version)
    assert await counters.update("big", lambda old: attrs.evolve(old, n=old.n + 1)) == Counter(
        "big", 2
    )


async def test_a_transaction_update_whose_fn_returns_a_coroutine_closes_it(
    db: netabase.Database,
) -> None:
    async def later(old: Counter | None) -> Counter | None:
        return old

    pending: list[Any] = []

    def hands_back(old: Counter | None) -> Any:
        pending.append(later(old))
        return pending[-1]

    async with db.transaction() as tx:
        with pytest.raises(netabase.ValidationError, match=r"Counter.*'a'.*awaitable"):
            await tx.store(Counter).update("a", hands_back)
    assert pending[0].cr_frame is None  # closed, not left to warn "never awaited"


async def test_a_lead_cancelled_between_attempts_hands_its_group_on(
    db: netabase.Database,
) -> None:
    """The update serving a group is cancelled while another process keeps winning: the
    cancellation lands at its next pause, and the update it was serving is served anew."""
    counters = db.store(Counter)
    await counters.insert(Counter("hits", 0))
    info = netabase.info_of(Counter)
    assert info is not None
    gate = trio.Event()
    queues = counters._routes.update_queues
    attempts = 0

    async def gated(wanted: Any) -> tuple[Any, int]:
        await gate.wait()
        return await counters.get_versioned(wanted)

    async def always_beaten(record: Counter, *, if_version: int) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            lead_scope.cancel()
        raise netabase.WriteConflict(info.name, 1, key="hits")

    async def lead() -> None:
        with lead_scope:
            await run_update(
                queues, info, "hits", bump, 10_000, counters.get_versioned, always_beaten
            )

    waiter: list[Counter] = []

    async def wait_behind() -> None:
        waiter.append(await counters.update("hits", bump))

    lead_scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            run_update, queues, info, "hits", lambda old: old, 0, gated, counters.insert
        )
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(lead)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(wait_behind)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert attempts == 2
    assert waiter == [Counter("hits", 1)]
    assert await counters.get("hits") == Counter("hits", 1)
    assert not queues


def bump(counter: Counter | None) -> Counter:
    return Counter("hits", 1) if counter is None else attrs.evolve(counter, n=counter.n + 1)
