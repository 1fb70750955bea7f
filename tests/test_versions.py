"""Per-record versions, create-only and conditional inserts and atomic `update`, on every
backend (and across OS processes on LMDB and Redis)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import msgpack
import pytest
import trio

import netabase
from netabase._update import run_update
from netabase.backends import Put, WriteBatch, open_backend
from netabase.backends.redis import RedisBackend
from netabase.testing import RedisServer

from .conftest import make_url
from .versions_models import VERSION_MODELS, Counter, Profile

ROOT = Path(__file__).resolve().parent.parent
TASKS = 64
INCREMENTS = 100


def fast_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The backend's URL; LMDB without fsync, which these tests of atomicity do not need."""
    server = request.getfixturevalue("redis_server") if kind == "redis" else None
    url = make_url(kind, tmp_path, server)
    return f"{url}?sync=false" if kind == "lmdb" else url


@pytest.fixture
async def db(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[netabase.Database]:
    async with netabase.open(
        fast_url(backend_kind, tmp_path, request), models=VERSION_MODELS
    ) as database:
        yield database


def bump(counter: Counter | None) -> Counter:
    return Counter("hits", 1) if counter is None else attrs.evolve(counter, n=counter.n + 1)


# versions


async def test_versions_grow_on_every_write_of_a_key_and_only_then(
    db: netabase.Database,
) -> None:
    counters = db.store(Counter)
    assert await counters.get_versioned("a") == (None, 0)
    await counters.insert(Counter("a", 1))
    record, first = await counters.get_versioned("a")
    assert record == Counter("a", 1) and first > 0
    await counters.insert(Counter("b", 1))  # another key: a's version stays
    assert await counters.get_versioned("a") == (Counter("a", 1), first)
    await counters.insert(Counter("a", 1))  # the same record again is a write too
    _, second = await counters.get_versioned("a")
    assert second > first
    await counters.remove("a")
    assert await counters.get_versioned("a") == (None, 0)
    await counters.insert(Counter("a", 1))  # re-created: never an earlier number again
    _, third = await counters.get_versioned("a")
    assert third > second


async def test_each_write_of_one_call_gets_a_larger_version(db: netabase.Database) -> None:
    counters = db.store(Counter)
    async with trio.open_nursery() as nursery:  # one actor batch, one apply
        for n in range(8):
            nursery.start_soon(counters.insert, Counter("same", n))
    record, version = await counters.get_versioned("same")
    assert record is not None
    await counters.insert_many([Counter("x", 0), Counter("same", 99)])
    assert (await counters.get_versioned("same"))[1] > version


async def test_an_old_format_record_decodes_as_version_1(db: netabase.Database) -> None:
    info = netabase.info_of(Counter)
    assert info is not None
    legacy = bytes((1, info.version)) + msgpack.packb({"name": "old", "n": 7})
    await db.backend.apply([WriteBatch((Put(info.space, info.encode_key("old"), legacy),))])
    counters = db.store(Counter)
    assert await counters.get("old") == Counter("old", 7)
    assert await counters.get_versioned("old") == (Counter("old", 7), 1)
    await counters.insert(Counter("old", 8), if_version=1)
    record, version = await counters.get_versioned("old")
    assert record == Counter("old", 8) and version > 1


async def test_a_raw_stamped_put_gets_the_version_and_a_plain_one_keeps_its_bytes(
    db: netabase.Database,
) -> None:
    backend = db.backend
    await backend.apply([WriteBatch((Put("c", b"k", b"v" + bytes(8), True),))])
    await backend.apply([WriteBatch((Put("c", b"p", b"v" + bytes(8)),))])
    version, (stamped, plain) = await backend.read("c", [b"k", b"p"])
    assert stamped is not None and stamped[:1] == b"v"
    assert 0 < int.from_bytes(stamped[1:], "big") < version
    assert plain == b"v" + bytes(8)
    with pytest.raises(netabase.ValidationError, match="placeholder"):
        await backend.apply([WriteBatch((Put("c", b"k", b"short", True),))])


# if_absent


async def test_if_absent_refuses_an_existing_key_naming_model_and_key(
    db: netabase.Database,
) -> None:
    counters = db.store(Counter)
    await counters.insert(Counter("a", 1), if_absent=True)
    with pytest.raises(netabase.AlreadyExists, match="Counter key 'a'") as caught:
        await counters.insert(Counter("a", 2), if_absent=True)
    assert (caught.value.model, caught.value.key) == ("Counter", "a")
    assert await counters.get("a") == Counter("a", 1)
    with pytest.raises(netabase.AlreadyExists, match="'a'"):
        await counters.insert_many([Counter("b", 1), Counter("a", 3)], if_absent=True)
    assert await counters.get("b") is None  # all or nothing
    await counters.insert_many([Counter("b", 1), Counter("c", 1)], if_absent=True)
    assert await counters.count() == 3


async def test_if_absent_race_has_exactly_one_winner(db: netabase.Database) -> None:
    profiles = db.store(Profile)
    won: list[int] = []
    lost: list[int] = []

    async def claim(task: int) -> None:
        try:
            await profiles.insert(Profile(1, f"p{task}@x"), if_absent=True)
        except netabase.AlreadyExists:
            lost.append(task)
        else:
            won.append(task)

    async with trio.open_nursery() as nursery:
        for task in range(TASKS):
            nursery.start_soon(claim, task)
    assert len(won) == 1 and len(lost) == TASKS - 1
    assert await profiles.get(1) == Profile(1, f"p{won[0]}@x")


# if_version


async def test_if_version_writes_only_over_the_version_read(db: netabase.Database) -> None:
    counters = db.store(Counter)
    await counters.insert(Counter("a", 1), if_version=0)  # 0: must be absent
    _, version = await counters.get_versioned("a")
    await counters.insert(Counter("a", 2), if_version=version)
    with pytest.raises(netabase.WriteConflict, match="Counter key 'a'") as caught:
        await counters.insert(Counter("a", 3), if_version=version)
    assert caught.value.key == "a" and caught.value.expected == version
    assert caught.value.actual is not None and caught.value.actual > version
    with pytest.raises(netabase.WriteConflict, match="expected version 0"):
        await counters.insert(Counter("a", 4), if_version=0)
    await counters.remove("a")
    with pytest.raises(netabase.WriteConflict, match=r"found 0 \(absent\)"):
        await counters.insert(Counter("a", 5), if_version=version)
    assert await counters.get("a") is None


async def test_conditional_inserts_refuse_bad_arguments(db: netabase.Database) -> None:
    counters = db.store(Counter)
    with pytest.raises(netabase.ValidationError, match="cannot be combined"):
        await counters.insert(Counter("a"), if_absent=True, if_version=0)
    with pytest.raises(netabase.ValidationError, match="if_version"):
        await counters.insert(Counter("a"), if_version=-1)
    with pytest.raises(netabase.ValidationError, match="if_absent"):
        await counters.insert(Counter("a"), if_absent=1)  # type: ignore[arg-type]


async def test_a_unique_model_keeps_its_claims_under_conditions(db: netabase.Database) -> None:
    profiles = db.store(Profile)
    await profiles.insert(Profile(1, "a@x"), if_absent=True)
    _, version = await profiles.get_versioned(1)
    await profiles.insert(Profile(1, "b@x"), if_version=version)
    await profiles.insert(Profile(2, "a@x"), if_absent=True)  # a@x was released
    assert [p.email async for p in profiles.scan()] == ["b@x", "a@x"]


# update


async def test_update_loses_no_increment(db: netabase.Database) -> None:
    counters = db.store(Counter)

    async def increments() -> None:
        for _ in range(INCREMENTS):
            await counters.update("hits", bump)

    async with trio.open_nursery() as nursery:
        for _ in range(TASKS):
            nursery.start_soon(increments)
    assert await counters.get("hits") == Counter("hits", TASKS * INCREMENTS)


async def test_if_version_races_lose_no_increment(db: netabase.Database) -> None:
    """The mechanism under `update`, raced by hand: read, write if unchanged, else again."""
    counters = db.store(Counter)
    await counters.insert(Counter("hits", 0))

    async def increments() -> None:
        for _ in range(3):
            while True:
                record, version = await counters.get_versioned("hits")
                try:
                    await counters.insert(bump(record), if_version=version)
                    break
                except netabase.WriteConflict:
                    await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for _ in range(TASKS):
            nursery.start_soon(increments)
    assert await counters.get("hits") == Counter("hits", TASKS * 3)


async def test_concurrent_updates_are_served_together_each_with_its_own_outcome(
    db: netabase.Database,
) -> None:
    counters = db.store(Counter)
    results: dict[int, Counter] = {}
    failures: list[int] = []

    async def one(task: int) -> None:
        def change(old: Counter | None) -> Counter:
            if task == 3:
                raise LookupError(task)
            if task == 5:
                return Counter("hits", "five")  # type: ignore[arg-type]
            return bump(old)

        try:
            results[task] = await counters.update("hits", change)
        except (LookupError, netabase.ValidationError):
            failures.append(task)

    async with trio.open_nursery() as nursery:
        for task in range(10):
            nursery.start_soon(one, task)
    assert sorted(failures) == [3, 5]
    assert sorted(record.n for record in results.values()) == list(range(1, 9))
    assert await counters.get("hits") == Counter("hits", 8)


async def test_enforced_updates_race_without_losing_one(db: netabase.Database) -> None:
    await db.permissions.grant("writer", Counter, "hits", "write")
    async with db.as_principal("writer") as writer:
        counters = writer.store(Counter)

        async def increments() -> None:
            for _ in range(5):
                await counters.update("hits", bump)

        async with trio.open_nursery() as nursery:
            for _ in range(16):
                nursery.start_soon(increments)
        assert await counters.get("hits") == Counter("hits", 80)


async def test_update_creates_returns_and_propagates(db: netabase.Database) -> None:
    counters = db.store(Counter)
    assert await counters.update("hits", bump) == Counter("hits", 1)
    assert await counters.update("hits", bump) == Counter("hits", 2)

    def refuse(old: Counter | None) -> Counter:
        raise LookupError("no")

    with pytest.raises(LookupError):
        await counters.update("hits", refuse)
    assert await counters.get("hits") == Counter("hits", 2)


async def test_update_refuses_what_is_not_a_plain_function_or_a_fitting_record(
    db: netabase.Database,
) -> None:
    counters = db.store(Counter)

    async def coroutine(old: Counter | None) -> Counter:
        return Counter("hits")

    with pytest.raises(netabase.ValidationError, match="coroutine"):
        await counters.update("hits", coroutine)  # type: ignore[arg-type]
    with pytest.raises(netabase.ValidationError, match="function"):
        await counters.update("hits", 5)  # type: ignore[arg-type]
    with pytest.raises(netabase.ValidationError, match=r"Counter.*key 'other'"):
        await counters.update("hits", lambda old: Counter("other"))
    with pytest.raises(netabase.ValidationError, match="Counter record"):
        await counters.update("hits", lambda old: Profile(1))  # type: ignore[arg-type,return-value]
    with pytest.raises(netabase.ValidationError, match="retries"):
        await counters.update("hits", bump, retries=-1)
    assert await counters.get("hits") is None


async def test_update_gives_up_with_write_conflict(db: netabase.Database) -> None:
    counters = db.store(Counter)
    await counters.insert(Counter("hits", 0))
    info = netabase.info_of(Counter)
    assert info is not None

    async def raced_insert(record: Counter, *, if_version: int) -> None:
        """Another process writes the key between every read and conditional write."""
        key, value = info.encode_record(attrs.evolve(record, n=-1))
        await db.backend.apply([WriteBatch((Put(info.space, key, value, True),))])
        await counters.insert(record, if_version=if_version)

    with pytest.raises(netabase.WriteConflict, match="Counter key 'hits'") as caught:
        await run_update({}, info, "hits", bump, 3, counters.get_versioned, raced_insert)
    assert caught.value.attempts == 4
    assert await counters.get("hits") == Counter("hits", -1)


async def test_the_enforced_update_needs_read_and_write(db: netabase.Database) -> None:
    await db.store(Counter).insert(Counter("hits", 0))
    await db.permissions.grant("reader", Counter, "hits", "read")
    await db.permissions.grant("writer", Counter, "hits", "write")
    async with db.as_principal("reader") as reader:
        assert await reader.store(Counter).get_versioned("hits") == (
            Counter("hits", 0),
            (await db.store(Counter).get_versioned("hits"))[1],
        )
        with pytest.raises(netabase.PermissionDenied, match="'write'"):
            await reader.store(Counter).update("hits", bump)
    async with db.as_principal("nobody") as nobody:
        with pytest.raises(netabase.PermissionDenied, match="'read'"):
            await nobody.store(Counter).update("hits", bump)
        with pytest.raises(netabase.PermissionDenied, match="'read'"):
            await nobody.store(Counter).get_versioned("hits")
    async with db.as_principal("writer") as writer:
        assert await writer.store(Counter).update("hits", bump) == Counter("hits", 1)
        with pytest.raises(netabase.AlreadyExists):
            await writer.store(Counter).insert(Counter("hits", 5), if_absent=True)
    assert await db.store(Counter).get("hits") == Counter("hits", 1)


def test_the_sync_adapter_updates(tmp_path: Path) -> None:
    with netabase.connect_sync("memory://", models=VERSION_MODELS) as db:
        counters = db.store(Counter)
        assert counters.update("hits", bump) == Counter("hits", 1)
        counters.insert(Counter("new"), if_absent=True)
        _, version = counters.get_versioned("hits")
        counters.insert(Counter("hits", 9), if_version=version)
        assert counters.get("hits") == Counter("hits", 9)


# across OS processes

WORKER = textwrap.dedent(
    """
    import sys, attrs, trio, netabase
    from tests.versions_models import VERSION_MODELS, Counter, Profile

    def bump(c):
        return Counter("hits", 1) if c is None else attrs.evolve(c, n=c.n + 1)

    async def main(url, tasks, increments, me):
        async with netabase.open(url, models=VERSION_MODELS) as db:
            counters = db.store(Counter)
            seen = []

            async def increment():
                mine = []
                for _ in range(increments):
                    await counters.update("hits", bump)
                    mine.append((await counters.get_versioned("hits"))[1])
                assert mine == sorted(set(mine)), "a version went back or repeated"
                seen.extend(mine)

            async with trio.open_nursery() as nursery:
                for _ in range(tasks):
                    nursery.start_soon(increment)
            try:
                await db.store(Profile).insert(Profile(1, me), if_absent=True)
                won = 1
            except netabase.AlreadyExists:
                won = 0
            print(won, min(seen), max(seen))

    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    """
)


async def run_workers(url: str, processes: int, tasks: int, increments: int) -> list[str]:
    outputs: list[str] = []

    async def one(me: int) -> None:
        done = await trio.run_process(
            [sys.executable, "-c", WORKER, url, str(tasks), str(increments), f"w{me}"],
            capture_stdout=True,
            cwd=ROOT,
        )
        outputs.append(done.stdout.decode())

    async with trio.open_nursery() as nursery:
        for me in range(processes):
            nursery.start_soon(one, me)
    return outputs


@pytest.mark.parametrize("kind", ["lmdb", "redis"])
async def test_update_loses_nothing_across_processes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = fast_url(kind, tmp_path, request)
    async with netabase.open(url, models=VERSION_MODELS) as db:
        await db.store(Counter).insert(Counter("hits", 0))
        _, before = await db.store(Counter).get_versioned("hits")
    processes, tasks = 4, 16
    increments = TASKS * INCREMENTS // (processes * tasks)
    outputs = await run_workers(url, processes, tasks, increments)
    results = [line.split() for line in outputs]
    assert sum(int(won) for won, _, _ in results) == 1  # one if_absent winner of four
    async with netabase.open(url, models=VERSION_MODELS) as db:
        record, after = await db.store(Counter).get_versioned("hits")
        assert record == Counter("hits", TASKS * INCREMENTS)
        assert all(before < int(low) <= int(high) <= after for _, low, high in results)


async def test_redis_stamps_stay_exact_beyond_2_to_the_53(
    redis_server: RedisServer,
) -> None:
    """Lua numbers are doubles: the script must write a stamp past 2^53 exactly."""
    redis_server.start()
    backend = open_backend(f"{redis_server.url}?name=bigstamps")
    assert isinstance(backend, RedisBackend)
    await backend.start(["s"])
    try:
        huge = (1 << 60) + 12345  # ahead of any clock, and odd
        await backend._client.command("HSET", backend.prefix + b"versions", "s", huge)
        result = await backend.apply(
            [
                WriteBatch(
                    (Put("s", b"a", b"x" + bytes(8), True), Put("s", b"b", b"y" + bytes(8), True))
                )
            ]
        )
        before, after = result.versions["s"]
        _, (a, b) = await backend.read("s", [b"a", b"b"])
        assert a is not None and b is not None
        first, second = int.from_bytes(a[1:], "big"), int.from_bytes(b[1:], "big")
        assert before == huge < first < second == after == await backend.version("s")
    finally:
        await backend.aclose()
