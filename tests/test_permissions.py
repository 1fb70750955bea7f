"""Hierarchical permissions on every backend: grants, groups, roles, caching, enforcement."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest
import trio

import netabase

from .perm_models import PERM_MODELS, Department, Document, Node, Organization, Project


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=PERM_MODELS) as database:
        await seed(database)
        yield database


async def seed(db: netabase.Database) -> None:
    await db.store(Organization).insert_many([Organization("acme"), Organization("globex")])
    await db.store(Department).insert_many([Department("eng", "acme"), Department("ops", "globex")])
    await db.store(Project).insert_many([Project("rocket", "eng"), Project("mail", "ops")])
    await db.store(Document).insert_many(
        [Document("d1", "rocket", "alice"), Document("d2", "mail", "bob")]
    )


async def test_a_grant_reaches_everything_below(db: netabase.Database) -> None:
    perms = db.permissions
    await perms.grant("alice", Organization, "acme", "write")
    assert await perms.check("alice", "write", Document, "d1")
    assert await perms.check("alice", "read", Project, "rocket")
    assert not await perms.check("alice", "admin", Document, "d1")
    assert not await perms.check("alice", "read", Document, "d2")
    assert not await perms.check("nobody", "read", Document, "d1")
    assert await perms.check_many(
        [("alice", "read", Document, "d1"), ("alice", "read", Document, "d2")]
    ) == [True, False]


async def test_nested_groups(db: netabase.Database) -> None:
    perms = db.permissions
    await perms.add_member("staff", "eng-team")
    await perms.add_member("eng-team", "alice")
    await perms.grant("staff", Department, "eng", "read")
    assert await perms.check("alice", "read", Document, "d1")
    explanation = await perms.explain("alice", "read", Document, "d1")
    assert explanation.allowed
    assert explanation.groups == ("alice", "eng-team", "staff")
    assert explanation.grant == netabase.Grant("staff", "Department", "eng", "read")
    assert explanation.objects == (
        ("Department", "eng"),
        ("Project", "rocket"),
        ("Document", "d1"),
    )
    assert "staff" in str(explanation)
    assert await perms.remove_member("eng-team", "alice") is True
    assert not await perms.check("alice", "read", Document, "d1")
    assert not (await perms.explain("alice", "read", Document, "d1")).allowed


async def test_changes_are_seen_by_the_very_next_check(db: netabase.Database) -> None:
    perms = db.permissions
    await perms.grant("alice", Project, "rocket", "read")
    assert await perms.check("alice", "read", Document, "d1")  # cached now
    assert await perms.revoke("alice", Project, "rocket") == 1
    assert not await perms.check("alice", "read", Document, "d1")
    await perms.grant("alice", Project, "mail", "read")
    assert not await perms.check("alice", "read", Document, "d1")
    await db.store(Document).insert(Document("d1", "mail", "alice"))  # re-parent
    assert await perms.check("alice", "read", Document, "d1")


async def test_removing_a_parent_changes_decisions_below(db: netabase.Database) -> None:
    nodes, perms = db.store(Node), db.permissions
    await nodes.insert_many([Node(1), Node(2, 1), Node(3, 2)])
    await perms.grant("alice", Node, 1, "read")
    assert await perms.check("alice", "read", Node, 3)
    await nodes.remove(2)  # set_null: node 3 becomes a root
    assert not await perms.check("alice", "read", Node, 3)


async def test_deep_hierarchies_and_groups(db: netabase.Database) -> None:
    nodes, perms = db.store(Node), db.permissions
    await nodes.insert_many([Node(0)] + [Node(i, i - 1) for i in range(1, 80)])
    for depth in range(60):
        await perms.add_member(f"g{depth + 1}", f"g{depth}" if depth else "alice")
    await perms.grant("g60", Node, 0, "read")
    assert await perms.check("alice", "read", Node, 79)
    explanation = await perms.explain("alice", "read", Node, 79)
    assert len(explanation.groups) == 61 and len(explanation.objects) == 80


async def test_cycles_are_refused(db: netabase.Database) -> None:
    nodes, perms = db.store(Node), db.permissions
    await perms.add_member("a", "b")
    await perms.add_member("b", "c")
    with pytest.raises(netabase.HierarchyCycle, match="cycle"):
        await perms.add_member("c", "a")
    with pytest.raises(netabase.HierarchyCycle):
        await perms.add_member("a", "a")
    await nodes.insert_many([Node(1), Node(2, 1), Node(3, 2)])
    with pytest.raises(netabase.HierarchyCycle) as info:
        await nodes.insert(Node(1, 3))
    assert info.value.model == "Node" and info.value.field == "parent"
    with pytest.raises(netabase.HierarchyCycle):
        await nodes.insert_many([Node(10, 11), Node(11, 10)])
    assert await nodes.get(1) == Node(1)


async def test_unknown_names(db: netabase.Database) -> None:
    perms = db.permissions
    with pytest.raises(netabase.UnknownAction, match="'fly'"):
        await perms.check("alice", "fly", Document, "d1")
    with pytest.raises(netabase.UnknownAction, match="'owner'"):
        await perms.grant("alice", Document, "d1", "owner")
    with pytest.raises(netabase.UnknownModel):
        await perms.check("alice", "read", int, 1)
    with pytest.raises(netabase.ValidationError):
        await perms.grant("", Document, "d1", "read")


async def test_list_objects_is_complete_and_paginated(db: netabase.Database) -> None:
    docs, perms = db.store(Document), db.permissions
    await docs.insert_many([Document(f"x{i:02d}", "rocket") for i in range(25)])
    await perms.grant("alice", Department, "eng", "read")
    await perms.grant("alice", Document, "d2", "read")
    await perms.grant("alice", Document, "ghost", "read")  # granted before the record exists
    listed = [key async for key in perms.list_objects("alice", "read", Document, page_size=4)]
    expected = sorted(["d1", "d2", "ghost", *[f"x{i:02d}" for i in range(25)]])
    assert listed == expected
    for key in listed:
        assert await perms.check("alice", "read", Document, key)


async def test_custom_roles(backend_url: str) -> None:
    roles = {"viewer": ["read"], "editor": ["read", "write"], "publisher": ["publish"]}
    async with netabase.open(backend_url, models=PERM_MODELS, roles=roles) as db:
        await seed(db)
        await db.permissions.grant("alice", Project, "rocket", "publisher")
        assert await db.permissions.check("alice", "publish", Document, "d1")
        assert not await db.permissions.check("alice", "read", Document, "d1")
        with pytest.raises(netabase.UnknownAction):
            await db.permissions.grant("alice", Project, "rocket", "admin")


async def test_enforced_view(db: netabase.Database) -> None:
    await db.permissions.grant("alice", Project, "rocket", "write")
    await db.permissions.grant("bob", Project, "mail", "read")
    async with db.as_principal("alice") as alice:
        docs = alice.store(Document)
        assert await docs.get("d1") == Document("d1", "rocket", "alice")
        with pytest.raises(netabase.PermissionDenied) as info:
            await docs.get("d2")
        assert (info.value.principal, info.value.action, info.value.model, info.value.key) == (
            "alice",
            "read",
            "Document",
            "d2",
        )
        assert [d.id async for d in docs.scan()] == ["d1"]
        await docs.insert(Document("d3", "rocket"))
        with pytest.raises(netabase.PermissionDenied):
            await docs.insert(Document("d4", "mail"))  # no write where it would go
        with pytest.raises(netabase.PermissionDenied):
            await docs.insert(Document("d1", "mail"))  # moving it out needs write there
        assert await docs.remove("d3") is True
    bob = db.as_principal("bob").store(Document)
    assert [d.id async for d in bob.scan(limit=1)] == ["d2"]  # limit counts readable ones
    with pytest.raises(netabase.PermissionDenied, match="'bob' may not 'write' Document"):
        await bob.remove("d2")
    assert await db.store(Document).get("d4") is None


async def test_grants_survive_reopening(backend_kind: str, backend_url: str) -> None:
    async with netabase.open(backend_url, models=PERM_MODELS) as first:
        await seed(first)
        await first.permissions.grant("alice", Organization, "acme", "read")
    async with netabase.open(backend_url, models=PERM_MODELS) as second:
        allowed = await second.permissions.check("alice", "read", Document, "d1")
    assert allowed is (backend_kind != "memory")


@pytest.mark.parametrize("backend_kind", ["redis"], indirect=True)
async def test_another_process_change_is_seen_at_the_next_check(backend_url: str) -> None:
    """Two runtimes on one Redis stand for two processes: no TTL, no stale decision."""
    async with netabase.open(backend_url, models=PERM_MODELS) as here:
        await seed(here)
        async with netabase.open(backend_url, models=PERM_MODELS) as there:
            await there.permissions.grant("alice", Project, "rocket", "read")
            assert await here.permissions.check("alice", "read", Document, "d1")
            await there.permissions.revoke("alice", Project, "rocket")
            assert not await here.permissions.check("alice", "read", Document, "d1")
            await there.permissions.grant("alice", Project, "mail", "read")
            await there.store(Document).insert(Document("d1", "mail"))
            assert await here.permissions.check("alice", "read", Document, "d1")


async def test_checks_racing_re_parenting_never_crash_and_end_fresh(
    db: netabase.Database,
) -> None:
    nodes = db.store(Node)
    a, b = 1000, 2000  # two roots; alice may read under a only
    await nodes.insert_many([Node(a), Node(b), Node(0)])
    await nodes.insert_many([Node(i, i - 1) for i in range(1, 30)])
    await db.permissions.grant("alice", Node, a, "read")
    queries = [("alice", "read", Node, k) for k in (29, 5, 21)]

    async def mover() -> None:
        for j in range(60):
            await nodes.insert(Node(20, a if j % 2 else b))

    async def checker() -> None:
        for _ in range(60):
            await db.permissions.check_many(queries)  # used to crash the permission actor

    async with trio.open_nursery() as nursery:
        nursery.start_soon(mover)
        for _ in range(3):
            nursery.start_soon(checker)
    # The last move put 20 under a: 21 and 29 are readable, 5 is not.
    assert await db.permissions.check_many(queries) == [True, False, True]
    assert db.stats().actors["~permissions"].restarts == 0


@netabase.model(key="id")
@attrs.frozen
class Team:
    id: str


@netabase.model(key="id", parent="team")
@attrs.frozen
class Board:
    id: str
    team: str = netabase.link(Team, on_delete="cascade")


@netabase.model(key="id", parent="board")
@attrs.frozen
class Card:
    id: str
    board: str = netabase.link(Board, on_delete="cascade")
    owner: str = netabase.link(Team, on_delete="cascade")  # not the parent
    watcher: str | None = netabase.link(Team, required=False, on_delete="set_null")


async def test_the_enforced_view_needs_write_on_all_a_removal_touches(backend_url: str) -> None:
    async with netabase.open(backend_url, models=[Team, Board, Card]) as db:
        await db.store(Team).insert_many([Team("t1"), Team("t2"), Team("t3")])
        await db.store(Board).insert(Board("b1", "t1"))
        await db.store(Card).insert_many(
            [Card("owned", "b1", "t2"), Card("watched", "b1", "t1", "t3")]
        )
        await db.permissions.grant("mallory", Team, "t2", "write")
        await db.permissions.grant("mallory", Team, "t3", "write")
        mallory = db.as_principal("mallory").store(Team)
        unreadable = "removing it would delete or rewrite a record 'mallory' may not read"
        with pytest.raises(netabase.PermissionDenied, match=f"Team key 't2': {unreadable}"):
            await mallory.remove("t2")  # would cascade into a card under t1 (unreadable)
        with pytest.raises(netabase.PermissionDenied, match=f"Team key 't3': {unreadable}"):
            await mallory.remove("t3")  # would rewrite a card under t1 (unreadable)
        await db.permissions.grant("mallory", Board, "b1", "read")
        with pytest.raises(netabase.PermissionDenied, match="Card key 'owned'"):
            await mallory.remove("t2")  # readable now: named
        assert await db.store(Card).get_many(["owned", "watched"]) == [
            Card("owned", "b1", "t2"),
            Card("watched", "b1", "t1", "t3"),
        ]
        await db.permissions.grant("mallory", Team, "t1", "write")
        assert await mallory.remove("t3") is True  # now she may write the card it rewrites


async def test_the_enforced_view_cannot_lift_a_record_to_the_top(db: netabase.Database) -> None:
    nodes = db.store(Node)
    await nodes.insert_many([Node(1), Node(2, 1)])
    await db.permissions.grant("mallory", Node, 1, "write")
    mallory = db.as_principal("mallory").store(Node)
    with pytest.raises(netabase.PermissionDenied):
        await mallory.insert(Node(2, None))  # no write where it would go: the top level
    assert await nodes.get(2) == Node(2, 1)
    await mallory.insert(Node(2, 1))  # rewriting it in place is fine
