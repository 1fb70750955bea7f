"""Generated keys (``netabase.auto()``) on every backend: filled on insert, unique across tasks,
processes and reopens, never replacing a record given its key explicitly."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import netabase
from netabase._auto import AUTO, uuid7
from netabase._key_blocks import FIRST_BLOCK, MAX_BLOCK, last_reserved, raise_counter
from netabase._layout import KEYS_SPACE
from netabase.testing import RedisServer

from .auto_models import AUTO_MODELS, Board, Card, Memo, Ticket
from .conftest import make_url

ROOT = Path(__file__).resolve().parent.parent
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# declaration


def test_auto_fits_only_an_int_or_str_key() -> None:
    with pytest.raises(netabase.ModelDefinitionError) as not_key:

        @netabase.model(key="id")
        @attrs.frozen
        class Wrong:
            id: int
            serial: int = netabase.auto()

    assert not_key.value.model == "Wrong" and not_key.value.field == "serial"
    with pytest.raises(netabase.ModelDefinitionError) as as_bytes:

        @netabase.model(key="id")
        @attrs.frozen
        class Raw:
            id: bytes = netabase.auto()

    with pytest.raises(netabase.ModelDefinitionError) as as_tuple:

        @netabase.model(key="id")
        @attrs.frozen
        class Pair:
            id: tuple[int, int] = netabase.auto()

    for refused, name in ((as_bytes, "Raw"), (as_tuple, "Pair")):
        assert refused.value.model == name and refused.value.field == "id"
        assert "int or str" in str(refused.value)


def test_an_unfilled_key_is_refused_outside_insert() -> None:
    info = netabase.info_of(Ticket)
    assert info is not None and info.auto is int
    with pytest.raises(netabase.ValidationError) as encoded:
        info.encode_record(Ticket("x"))
    assert encoded.value.model == "Ticket" and encoded.value.field == "id"
    assert "netabase.auto()" in str(encoded.value)
    with pytest.raises(netabase.ValidationError) as as_key:
        info.encode_key(AUTO)
    assert as_key.value.field == "id" and "not generated yet" in str(as_key.value)
    card = netabase.info_of(Card)
    assert card is not None
    with pytest.raises(netabase.ValidationError) as linked:
        card.encode_record(Card(board=AUTO, id=1))
    assert linked.value.model == "Card" and linked.value.field == "board"


# on every backend


async def test_insert_fills_and_returns_the_keys(backend_url: str) -> None:
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        tickets = db.store(Ticket)
        first = await tickets.insert(Ticket("one"))
        assert first == Ticket("one", id=1)
        many = await tickets.insert_many([Ticket("two"), Ticket("given", id=40), Ticket("three")])
        assert [t.id for t in many] == [2, 40, 3]
        assert await tickets.insert_many([]) == []
        assert await tickets.get(3) == Ticket("three", id=3)
        assert await tickets.insert(Ticket("again", id=40)) == Ticket("again", id=40)
        memo = await db.store(Memo).insert(Memo("hi"))
        assert UUID7.match(memo.id)
        assert await db.store(Memo).get(memo.id) == memo


async def test_a_generated_key_never_replaces_an_explicit_record(backend_url: str) -> None:
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        tickets = db.store(Ticket)
        assert (await tickets.insert(Ticket("a"))).id == 1  # this process holds keys up to 16
        await tickets.insert(Ticket("explicit", id=2))  # inside that block
        await tickets.insert(Ticket("far", id=1000))  # past the counter
        made = await tickets.insert_many([Ticket(str(i)) for i in range(3)])
        assert await tickets.get(2) == Ticket("explicit", id=2)
        assert [t.id for t in made] == [1001, 1002, 1003]  # the block was given up, and
        _, (counter,) = await db.backend.read(KEYS_SPACE, [b"Ticket"])
        assert counter is not None and int(counter) >= 1003  # the next one starts past 1000


async def test_keys_are_unique_under_concurrent_tasks(backend_url: str) -> None:
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        tickets = db.store(Ticket)
        keys: list[int] = []

        async def writer(n: int) -> None:
            for round_ in range(4):
                if round_ % 2:
                    batch = [Ticket(f"{n}.{round_}.{i}") for i in range(5)]
                    keys.extend(t.id for t in await tickets.insert_many(batch))
                else:
                    keys.append((await tickets.insert(Ticket(f"{n}.{round_}"))).id)

        async with trio.open_nursery() as nursery:
            for n in range(64):
                nursery.start_soon(writer, n)
        assert len(keys) == 64 * 12 == len(set(keys)) == await tickets.count()
        assert min(keys) == 1


async def test_raising_the_counter_never_lowers_it_nor_loses_a_raise(backend_url: str) -> None:
    """What restore does with a dump's counter: concurrent raises all land, the highest wins."""
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        info = netabase.info_of(Ticket)
        assert await last_reserved(db.backend, info) == 0
        assert await raise_counter(db.backend, info, 0) == 0  # nothing to move: nothing written
        await db.store(Ticket).insert(Ticket("a"))
        assert await raise_counter(db.backend, info, 3) == FIRST_BLOCK
        await db.store(Ticket).insert(Ticket("far", id=500))
        assert await raise_counter(db.backend, info, 7) == 500  # past the keys stored
        async with trio.open_nursery() as nursery:
            for floor in range(600, 640):
                nursery.start_soon(raise_counter, db.backend, info, floor)
        assert await last_reserved(db.backend, info) == 639


async def test_a_reopened_store_continues_after_the_last_block(reopenable: str) -> None:
    async with netabase.open(reopenable, models=AUTO_MODELS) as db:
        before = [t.id for t in await db.store(Ticket).insert_many([Ticket("a"), Ticket("b")])]
    async with netabase.open(reopenable, models=AUTO_MODELS) as db:
        after = (await db.store(Ticket).insert(Ticket("c"))).id
        await db.store(Ticket).remove(after)
    async with netabase.open(reopenable, models=AUTO_MODELS) as db:
        last = (await db.store(Ticket).insert(Ticket("d"))).id
    assert before == [1, 2]
    assert after == FIRST_BLOCK + 1  # the rest of the first block is a gap, never reused
    assert last > after  # a removed key is not handed out again


async def test_the_enforced_view_and_adapters_return_stored_records(backend_url: str) -> None:
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        await db.store(Board).insert(Board("b"))
        await db.permissions.grant("ann", Board, "b", "write")
        cards = db.as_principal("ann").store(Card)
        card = await cards.insert(Card(board="b", slug="x"))
        assert card.id == 1 and await db.store(Card).get(1) == card
        both = await cards.insert_many([Card(board="b", slug="y"), Card(board="b", slug="z")])
        assert [c.id for c in both] == [2, 3]
        with pytest.raises(netabase.ValidationError) as taken:
            await db.store(Card).insert(Card(board="b", slug="x"))
        assert taken.value.field == "slug" and taken.value.key == 4
        with pytest.raises(netabase.PermissionDenied):
            await db.as_principal("bob").store(Card).insert(Card(board="b"))


async def test_a_reservation_that_cannot_finish_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with netabase.open("memory://", models=AUTO_MODELS, request_timeout=2.0) as db:
        blocks = db._runtime.key_blocks["Ticket"]
        release = trio.Event()

        async def another_reservation() -> None:  # holds the lock and never finishes
            async with blocks._lock:
                await release.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(another_reservation)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(netabase.RequestTimeout) as late:
                await db.store(Ticket).insert(Ticket("late"))
            release.set()
        assert late.value.model == "Ticket" and late.value.operation == "insert"
        assert (await db.store(Ticket).insert(Ticket("then"))).id == 1


def test_the_sync_adapter_returns_stored_records() -> None:
    with netabase.connect_sync("memory://", models=AUTO_MODELS) as db:
        assert db.store(Ticket).insert(Ticket("s")) == Ticket("s", id=1)
        assert [t.id for t in db.store(Ticket).insert_many([Ticket("t")])] == [2]


@netabase.model(key="id", name="Ticket")
@attrs.frozen
class GivenTicket:
    """`Ticket` as declared before its keys were generated."""

    title: str
    id: int


async def test_a_model_may_start_generating_its_keys(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'db'}"
    async with netabase.open(url, models=[GivenTicket]) as db:
        await db.store(GivenTicket).insert_many([GivenTicket("old", 7), GivenTicket("old", 3)])
    async with netabase.open(url, models=[Ticket]) as db:  # a field gained a default
        assert await db.store(Ticket).get(7) == Ticket("old", id=7)
        assert (await db.store(Ticket).insert(Ticket("new"))).id == 8


async def test_blocks_grow_so_few_reservations_serve_many_inserts() -> None:
    async with netabase.open("memory://", models=AUTO_MODELS) as db:
        tickets = db.store(Ticket)
        for start in range(0, 3000, 10):
            await tickets.insert_many([Ticket(str(start + i)) for i in range(10)])
        reservations = await db.backend.version(KEYS_SPACE)  # one apply each
        _, (counter,) = await db.backend.read(KEYS_SPACE, [b"Ticket"])
    assert reservations == 8  # 16 + 32 + ... + 1024 + 1024 keys
    assert counter is not None and 3000 < int(counter) < 3000 + MAX_BLOCK


async def test_str_keys_scan_in_insertion_order(backend_url: str) -> None:
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        memos = db.store(Memo)
        made = [await memos.insert(Memo(str(i))) for i in range(30)]
        made += await memos.insert_many([Memo(str(i)) for i in range(30, 60)])
        assert [memo async for memo in memos.scan()] == made


def test_uuid7_strings_sort_in_the_order_they_were_made() -> None:
    made = [uuid7() for _ in range(5000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(UUID7.match(text) for text in made)


# across processes

WORKER = textwrap.dedent(
    """
    import json, sys, trio, netabase
    from tests.auto_models import AUTO_MODELS, Ticket

    async def main(url, name):
        keys = []
        async with netabase.open(url, models=AUTO_MODELS) as db:
            tickets = db.store(Ticket)

            async def task(n):
                for i in range(10):
                    if i % 3:
                        keys.append((await tickets.insert(Ticket(f"{name}.{n}.{i}"))).id)
                    else:
                        made = await tickets.insert_many([Ticket(name), Ticket(name)])
                        keys.extend(t.id for t in made)

            async with trio.open_nursery() as nursery:
                for n in range(8):
                    nursery.start_soon(task, n)
        print(json.dumps(keys))

    trio.run(main, sys.argv[1], sys.argv[2])
    """
)


async def _in_processes(url: str) -> list[int]:
    outputs: list[Any] = []

    async def worker(name: str) -> None:
        done = await trio.run_process(
            [sys.executable, "-c", WORKER, url, name], capture_stdout=True, cwd=ROOT
        )
        outputs.append(json.loads(done.stdout))

    async with trio.open_nursery() as nursery:
        for name in "abcd":
            nursery.start_soon(worker, name)
    return [key for keys in outputs for key in keys]


@pytest.mark.parametrize("kind", ["lmdb", "redis"])
async def test_no_key_is_generated_twice_across_processes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server: RedisServer | None = (
        request.getfixturevalue("redis_server") if kind == "redis" else None
    )
    url = make_url(kind, tmp_path, server)
    keys = await _in_processes(url)
    assert len(keys) == 4 * 8 * 14 == len(set(keys))
    async with netabase.open(url, models=AUTO_MODELS) as db:
        assert await db.store(Ticket).count() == len(keys)


def test_the_asyncio_adapter_returns_stored_records() -> None:
    async def main() -> Ticket:
        async with netabase.open_asyncio("memory://", models=AUTO_MODELS) as db:
            return await db.store(Ticket).insert(Ticket("a"))

    assert asyncio.run(main()) == Ticket("a", id=1)


async def test_generated_keys_with_if_absent_and_if_version(tmp_path: Path) -> None:
    """A generated key is absent by construction; it has no stored version to name."""
    async with netabase.open(f"lmdb://{tmp_path / 'db'}", models=AUTO_MODELS) as db:
        stored = await db.store(Ticket).insert(Ticket(title="a"), if_absent=True)
        assert isinstance(stored.id, int)
        with pytest.raises(netabase.ValidationError, match="generated key"):
            await db.store(Ticket).insert(Ticket(title="b"), if_version=3)
        many = await db.store(Ticket).insert_many([Ticket(title="c")], if_absent=True)
        assert len(many) == 1 and many[0].id != stored.id
