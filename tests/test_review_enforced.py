"""Adversarial review of the enforced view: a malicious principal against `db.as_principal`
on every backend (escalation, existence oracles, races)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio

import netabase

from .test_enforced_view import Door, race


@netabase.model(key="id")
@attrs.frozen
class Realm:
    id: str


@netabase.model(key="id", parent="realm", unique=["title"])
@attrs.frozen
class Box:
    id: str
    realm: str = netabase.link(Realm, on_delete="cascade")
    title: str = ""


@netabase.condition("rv_unlocked")
def unlocked(principal: str, item: Item) -> bool:
    return not item.locked


@netabase.model(key="id", parent="box", rules=[netabase.require("write", when="rv_unlocked")])
@attrs.frozen
class Item:
    id: str
    box: str = netabase.link(Box, on_delete="cascade")
    text: str = ""
    owns: str | None = netabase.link(Box, required=False, unique=True, on_delete="set_null")
    locked: bool = False


@netabase.model(key="id", parent="up")
@attrs.frozen
class Cell:
    id: str
    up: str | None = netabase.link("self", required=False, on_delete="cascade")


@netabase.condition("rv_crate_author")
def crate_author(principal: str, crate: Crate) -> bool:
    return crate.author == principal


@netabase.model(key="id", parent="realm", rules=[netabase.allow("write", when="rv_crate_author")])
@attrs.frozen
class Crate:
    id: str
    realm: str = netabase.link(Realm, on_delete="cascade")
    author: str = ""


@netabase.model(key="id", parent="crate")
@attrs.frozen
class Thing:
    id: str
    crate: str = netabase.link(Crate, on_delete="cascade")


MODELS = [Realm, Box, Item, Cell, Crate, Thing]


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    """r1 > b1 (mallory may write r1); r2 > b2, hidden from her."""
    async with netabase.open(backend_url, models=MODELS) as database:
        await database.store(Realm).insert_many([Realm("r1"), Realm("r2")])
        await database.store(Box).insert_many([Box("b1", "r1", "mine"), Box("b2", "r2", "secret")])
        await database.permissions.grant("mallory", Realm, "r1", "write")
        yield database


# -- unique values held by records the principal may not read ---------------------------------


async def test_a_unique_field_violation_does_not_name_an_unreadable_holder(
    db: netabase.Database,
) -> None:
    boxes = db.as_principal("mallory").store(Box)
    with pytest.raises(netabase.ValidationError) as info:
        await boxes.insert(Box("x", "r1", "secret"))  # held by b2, which she may not read
    assert str(info.value) == (
        "Box.title (key 'x'): value 'secret' is already used by a record you cannot read "
        "[rule unique]"
    )
    assert (info.value.rule, info.value.field, info.value.key) == ("unique", "title", "x")
    with pytest.raises(netabase.ValidationError, match="already used by Box key 'b1'"):
        await boxes.insert(Box("y", "r1", "mine"))  # a holder she may read is named
    assert await db.store(Box).get_many(["x", "y"]) == [None, None]


async def test_a_unique_link_violation_does_not_name_an_unreadable_holder(
    db: netabase.Database,
) -> None:
    await db.store(Item).insert(Item("hidden", "b2", owns="b1"))
    items = db.as_principal("mallory").store(Item)
    with pytest.raises(netabase.LinkViolation) as info:
        await items.insert(Item("x", "b1", owns="b1"))
    assert str(info.value) == (
        "Item.owns key 'x': Box key 'b1' is already linked by a record you cannot read "
        "(unique link)"
    )
    assert (info.value.model, info.value.key, info.value.field) == ("Item", "x", "owns")
    await db.store(Item).insert(Item("shown", "b1", owns="b2"))
    await db.permissions.grant("mallory", Realm, "r2", "read")
    with pytest.raises(netabase.LinkViolation, match="already linked by Item key 'shown'"):
        await items.insert(Item("x", "b1", owns="b2"))


# -- escalation attempts that must fail ---------------------------------------------------------


async def test_no_place_to_write_is_gained_through_the_shape_of_a_write(
    db: netabase.Database,
) -> None:
    """mallory may write the cell "mine" only; "theirs" and "top" are someone else's."""
    cells = db.store(Cell)
    await cells.insert_many([Cell("top"), Cell("theirs", "top"), Cell("mine"), Cell("kid", "mine")])
    await db.permissions.grant("mallory", Cell, "mine", "write")
    mallory = db.as_principal("mallory").store(Cell)
    attempts = {
        "itself as parent": [Cell("new", "new")],
        "a cycle of new cells": [Cell("a", "b"), Cell("b", "a")],
        "a new parent under theirs": [Cell("x", "y"), Cell("y", "theirs")],
        "their cell moved under hers": [Cell("theirs", "mine")],
        "her cell moved under theirs": [Cell("kid", "theirs")],
        "in, then out again": [Cell("kid", "mine"), Cell("theirs", "kid")],
        "a new top-level cell": [Cell("loose")],
        "one allowed, one denied": [Cell("fine", "mine"), Cell("bad", "top")],
        "a cycle through a stored cell": [Cell("mine", "kid")],
    }
    for name, records in attempts.items():
        with pytest.raises((netabase.PermissionDenied, netabase.HierarchyCycle)):
            await mallory.insert_many(records)
        assert [c async for c in cells.scan()] == [
            Cell("kid", "mine"),
            Cell("mine"),
            Cell("theirs", "top"),
            Cell("top"),
        ], name
    with pytest.raises(netabase.PermissionDenied, match="Cell key 'top'"):
        await mallory.remove_many(["kid", "top"])  # all or nothing
    assert await cells.get("kid") == Cell("kid", "mine")
    await mallory.insert_many([Cell("fine", "mine"), Cell("deeper", "fine")])  # parents she writes


async def test_an_allow_rule_on_a_record_does_not_carry_its_subtree_into_her_realm(
    db: netabase.Database,
) -> None:
    """mallory authored crate c in r2, so an allow rule lets her edit c; the things in it are
    bob's, which she may not write. Moving c into r1 (where she holds a grant) would hand her
    every one of them: moving a record moves its subtree, so it needs a grant on the record's
    chain, not an allow rule on the record alone."""
    await db.store(Crate).insert(Crate("c", "r2", "mallory"))
    await db.store(Thing).insert(Thing("bobs", "c"))
    crates = db.as_principal("mallory").store(Crate)
    await crates.insert(Crate("c", "r2", "mallory"))  # editing in place: the allow rule
    assert not await db.permissions.check("mallory", "write", Thing, "bobs")
    with pytest.raises(netabase.PermissionDenied, match="Crate key 'c'"):
        await crates.insert(Crate("c", "r1", "mallory"))
    assert await db.store(Crate).get("c") == Crate("c", "r2", "mallory")
    assert not await db.permissions.check("mallory", "write", Thing, "bobs")
    assert not await db.permissions.check_record("mallory", "write", Crate("c", "r1", "mallory"))
    await db.permissions.grant("mallory", Crate, "c", "write")  # the subtree is hers: it may go
    await crates.insert(Crate("c", "r1", "mallory"))
    assert await db.store(Crate).get("c") == Crate("c", "r1", "mallory")


# -- reads judged on one state -----------------------------------------------------------------


async def test_a_read_is_not_judged_on_the_record_before_and_its_ancestors_after_a_change(
    db: netabase.Database,
) -> None:
    """Sanitise, then publish: the admin rewrites a secret record, then moves its box where
    mallory may read. The secret was never readable to her; a read taken before the rewrite
    and judged after the move must not hand it out."""
    items = db.store(Item)
    await items.insert(Item("i", "b2", "the secret"))
    mallory = db.as_principal("mallory").store(Item)

    async def sanitise_then_publish() -> None:
        await items.insert(Item("i", "b2", "nothing to see"))
        await db.store(Box).insert(Box("b2", "r1", "secret"))

    result = await race(Door(db, None, "judge"), lambda: mallory.get("i"), sanitise_then_publish)
    assert result == Item("i", "b2", "nothing to see")  # read again, on the new state


async def test_a_scan_page_is_not_judged_on_records_before_and_ancestors_after_a_change(
    db: netabase.Database,
) -> None:
    items = db.store(Item)
    await items.insert_many([Item("a", "b1", "open"), Item("i", "b2", "the secret")])
    mallory = db.as_principal("mallory").store(Item)

    async def sanitise_then_publish() -> None:
        await items.insert(Item("i", "b2", "nothing to see"))
        await db.store(Box).insert(Box("b2", "r1", "secret"))

    async def scan() -> list[Item]:
        return [item async for item in mallory.scan()]

    result = await race(Door(db, None, "judge"), scan, sanitise_then_publish)
    assert result == [Item("a", "b1", "open"), Item("i", "b2", "nothing to see")]


async def test_a_read_rewritten_under_every_judgement_gives_up(db: netabase.Database) -> None:
    await db.store(Item).insert(Item("a", "b1", "open"))
    mallory = db.as_principal("mallory").store(Item)
    door = Door(db, None, "judge", times=8)
    outcome: list[BaseException] = []

    async def guarded() -> None:
        with pytest.raises(netabase.WriteConflict) as info:
            await mallory.get("a")
        outcome.append(info.value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(guarded)
        for round in range(8):
            await door.reached.wait()
            await db.store(Item).insert(Item("a", "b1", f"rewritten {round}"))
            door.open()
    assert outcome and outcome[0].model == "Item"  # type: ignore[attr-defined]
    assert await mallory.get("a") == Item("a", "b1", "rewritten 7")  # left alone, it goes


async def test_a_principal_churning_moves_makes_no_other_read_fail(
    db: netabase.Database,
) -> None:
    """mallory moves her own item back and forth without pause (each move rewrites the
    permission revision); bob's reads elsewhere are judged on his records and never give up."""
    await db.store(Box).insert(Box("b1b", "r1", "other"))
    await db.store(Item).insert_many([Item("bobs", "b2", "his"), Item("toy", "b1")])
    await db.permissions.grant("bob", Realm, "r2", "read")
    mallory = db.as_principal("mallory").store(Item)
    bob = db.as_principal("bob").store(Item)
    done, moves = False, 0

    async def churn() -> None:
        nonlocal moves
        while not done:
            await mallory.insert(Item("toy", "b1b" if moves % 2 == 0 else "b1"))
            moves += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(churn)
        for _ in range(60):
            assert await bob.get("bobs") == Item("bobs", "b2", "his")
            assert [item.id async for item in bob.scan()] == ["bobs"]
        done = True
    assert moves > 10


async def test_a_principal_moving_her_own_records_starves_no_other_enforced_write(
    db: netabase.Database,
) -> None:
    """Every move of any record rewrites the permission revision. An enforced write pinned it:
    mallory, moving one of her own boxes between two realms she may write, made bob's
    unrelated write in r2 judge again each time and give up with WriteConflict (in a
    free-running loop ~199 of 200 of his writes failed). It pins the grants token and the
    ancestors it went by instead."""
    await db.store(Realm).insert(Realm("r3"))
    await db.permissions.grant("mallory", Realm, "r3", "write")
    await db.permissions.grant("bob", Realm, "r2", "write")
    mallory = db.as_principal("mallory").store(Box)
    bob = db.as_principal("bob").store(Item)
    door = Door(db, Item, "insert", times=8)
    outcome: list[Any] = []
    finished = trio.Event()

    async def write() -> None:
        try:
            outcome.append(await bob.insert(Item("his", "b2")))
        except netabase.NetabaseError as exc:
            outcome.append(exc)
        finished.set()

    async def held_or_finished() -> None:
        async with trio.open_nursery() as waiting:
            for event in (door.reached, finished):
                waiting.start_soon(_set_then_cancel, event, waiting.cancel_scope)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        for round in range(8):
            await held_or_finished()
            if finished.is_set():
                break
            await mallory.insert(Box("b1", "r3" if round % 2 == 0 else "r1", "mine"))
            door.open()
    assert outcome == [Item("his", "b2")], outcome  # insert returns the record as stored
    assert await db.store(Item).get("his") == Item("his", "b2")


# -- every kind of admin change between the judgement and the write ----------------------------


async def _through_groups(db: netabase.Database) -> None:
    """eve may write r1 only as a member of g2, itself a member of g1, which holds the grant."""
    await db.permissions.add_member("g1", "g2")
    await db.permissions.add_member("g2", "eve")
    await db.permissions.grant("g1", Realm, "r1", "write")
    await db.store(Item).insert(Item("e", "b1", "kept"))


RACES: dict[str, tuple[type, str, Any, Any]] = {
    # name: (model whose write is held, kind held, eve's write, the admin's change meanwhile)
    "eve leaves her group": (
        Item,
        "insert",
        lambda v: v.store(Item).insert(Item("n", "b1")),
        lambda db: db.permissions.remove_member("g2", "eve"),
    ),
    "her group leaves the granted group": (
        Item,
        "insert",
        lambda v: v.store(Item).insert(Item("n", "b1")),
        lambda db: db.permissions.remove_member("g1", "g2"),
    ),
    "the grant on the ancestor goes": (
        Item,
        "remove",
        lambda v: v.store(Item).remove("e"),
        lambda db: db.permissions.revoke("g1", Realm, "r1"),
    ),
    "the record is locked (a require rule stops holding)": (
        Item,
        "insert",
        lambda v: v.store(Item).insert(Item("e", "b1", "changed")),
        lambda db: db.store(Item).insert(Item("e", "b1", "kept", locked=True)),
    ),
    "the parent moves away": (
        Item,
        "insert",
        lambda v: v.store(Item).insert(Item("n", "b1")),
        lambda db: db.store(Box).insert(Box("b1", "r2", "mine")),
    ),
    "a record the cascade would rewrite appears": (
        Realm,
        "remove",
        lambda v: v.store(Realm).remove("r1"),
        lambda db: db.store(Item).insert(Item("late", "b2", owns="b1")),
    ),
}


@pytest.mark.parametrize("name", list(RACES))
async def test_every_admin_change_between_judgement_and_write_is_seen(
    db: netabase.Database, name: str
) -> None:
    await _through_groups(db)
    model, kind, write, change = RACES[name]
    before = {m.__name__: [r async for r in db.store(m).scan()] for m in MODELS}
    eve = db.as_principal("eve")
    result = await race(Door(db, model, kind), lambda: write(eve), lambda: change(db))
    assert isinstance(result, netabase.PermissionDenied), result
    changed = {m.__name__: [r async for r in db.store(m).scan()] for m in MODELS}
    assert await db.store(Item).get("n") is None
    if name == "the record is locked (a require rule stops holding)":
        assert changed["Item"] == [Item("e", "b1", "kept", locked=True)]
    elif name == "a record the cascade would rewrite appears":
        assert changed["Realm"] == before["Realm"] and changed["Box"] == before["Box"]
    else:
        assert changed["Item"] == before["Item"]


@pytest.mark.parametrize("shut", ["lock", "revoke", "leave group"])
async def test_a_shut_record_is_never_overwritten_under_real_concurrency(
    backend_url: str, backend_kind: str, shut: str
) -> None:
    """The admin shuts a record to mallory (locks it, revokes her grant, or drops her from
    the group holding it) and opens it again, over and over, while she keeps overwriting it
    through the enforced view (on Redis from a second database, as another process would):
    while it is shut, only the admin writes it."""
    async with netabase.open(backend_url, models=MODELS) as db:
        await db.store(Realm).insert_many([Realm("r1"), Realm("r2")])
        await db.store(Box).insert_many([Box("b1", "r1", "mine")])
        await db.permissions.add_member("crew", "mallory")
        await db.permissions.grant(
            "crew" if shut == "leave group" else "mallory", Realm, "r1", "write"
        )
        await db.store(Item).insert(Item("t", "b1", "open"))
        perms, items = db.permissions, db.store(Item)

        async def close(round: int) -> None:
            if shut == "revoke":
                await perms.revoke("mallory", Realm, "r1")
            elif shut == "leave group":
                await perms.remove_member("crew", "mallory")
            await items.insert(Item("t", "b1", f"shut {round}", locked=shut == "lock"))

        async def reopen() -> None:
            if shut == "revoke":
                await perms.grant("mallory", Realm, "r1", "write")
            elif shut == "leave group":
                await perms.add_member("crew", "mallory")
            await items.insert(Item("t", "b1", "open"))

        other_db = netabase.open(backend_url, models=MODELS) if backend_kind == "redis" else None
        async with other_db if other_db is not None else _same(db) as other:
            mallory = other.as_principal("mallory").store(Item)
            done, won = trio.Event(), trio.Event()

            async def overwrite() -> None:
                while not done.is_set():
                    try:
                        await mallory.insert(Item("t", "b1", "mallory"))
                        won.set()
                    except (netabase.PermissionDenied, netabase.WriteConflict):
                        await trio.lowlevel.checkpoint()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(overwrite)
                for round in range(30):
                    await close(round)
                    for _ in range(3):
                        await trio.lowlevel.checkpoint()
                    stored = await items.get("t")
                    assert stored is not None and stored.text == f"shut {round}", stored
                    won = trio.Event()
                    await reopen()
                    with trio.fail_after(10):  # open again: she gets through
                        await won.wait()
                done.set()


async def _set_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


class _same:
    """``async with`` on a database already open: the same database."""

    def __init__(self, db: netabase.Database) -> None:
        self.db = db

    async def __aenter__(self) -> netabase.Database:
        return self.db

    async def __aexit__(self, *exc: object) -> None:
        return None


# -- bad arguments ----------------------------------------------------------------------------


async def test_bad_arguments_through_the_enforced_view_raise_validation_errors(
    db: netabase.Database,
) -> None:
    boxes = db.as_principal("mallory").store(Box)

    async def scan(**options: Any) -> list[Box]:
        return [box async for box in boxes.scan(**options)]

    for bad, message in [
        (lambda: boxes.get_many(None), "keys: must be an iterable such as a list, got NoneType"),
        (lambda: boxes.get_many(5), "keys: must be an iterable such as a list, got int"),
        (lambda: boxes.get_many("b1"), "keys: must be an iterable such as a list, got str"),
        (lambda: boxes.remove_many(None), "keys: must be an iterable such as a list"),
        (lambda: boxes.insert_many(None), "records: must be an iterable such as a list"),
        (lambda: boxes.insert_many(Box("x", "r1")), "records: must be an iterable such as a list"),
        (lambda: scan(limit="3"), "limit: must be an int between 0 and .*, got str '3'"),
        (lambda: scan(limit=-1), "limit: must be between 0 and .*, got int -1"),
        (lambda: scan(page_size=1.5), "page_size: must be an int between 1 and 1048576, got float"),
        (lambda: scan(page_size=0), "page_size: must be between 1 and 1048576, got int 0"),
        (lambda: boxes.get_many([None]), "bad key"),
        (lambda: boxes.insert(None), "expected a Box record"),
    ]:
        with pytest.raises(netabase.ValidationError, match=message) as info:
            await bad()
        assert info.value.model == "Box"
    with pytest.raises(netabase.ValidationError, match="keys: must be an iterable"):
        await db.store(Box).get_many(None)  # the plain store, alike
    assert [box.id for box in await boxes.get_many(["b1"])] == ["b1"]  # still serving
    assert len(await boxes.get_many(["b1"] * 20_000)) == 20_000
    assert await db.store(Box).count() == 2


async def test_a_write_is_judged_again_when_an_ancestor_far_above_moves_meanwhile(
    db: netabase.Database,
) -> None:
    cells = db.store(Cell)
    await cells.insert_many([Cell("top"), Cell("mid", "top"), Cell("leaf", "mid")])
    await db.permissions.grant("mallory", Cell, "top", "write")
    mallory = db.as_principal("mallory").store(Cell)
    for write in (
        lambda: mallory.insert(Cell("new", "leaf")),
        lambda: mallory.remove("leaf"),
    ):
        result = await race(
            Door(db, Cell, {"insert", "remove"}),
            write,
            lambda: cells.insert(Cell("mid")),  # mid (and all below it) leaves her cell
        )
        assert isinstance(result, netabase.PermissionDenied), result
        await cells.insert(Cell("mid", "top"))
    assert await cells.get_many(["new", "leaf"]) == [None, Cell("leaf", "mid")]
