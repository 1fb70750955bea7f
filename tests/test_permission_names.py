"""Principal names are whole key components: no name reaches into a longer one, on every backend.

``encode_str("alice")`` is a byte prefix of ``encode_str("alice\\x00x")``, so every look-up by
name must stop at the end of the name. Names are also bounded so that every permission key
composed of them fits a backend key, and one bad write never fails the others of its batch.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import outcome
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netabase
from netabase._keys import encode_str
from netabase.actors._mailbox import Request
from netabase.actors._messages import AddMember, GrantRole
from netabase.actors._permission_spaces import MAX_NAME_KEY
from netabase.testing import RedisServer

from .conftest import make_url
from .perm_models import PERM_MODELS, Document, Node, Organization

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


@pytest.mark.parametrize("field", ["principal", "group", "member"])
async def test_names_whose_keys_would_not_fit_are_refused(
    db: netabase.Database, field: str
) -> None:
    p = db.permissions
    longest, over = at_limit("\x00"), at_limit("\x00") + "a"
    await p.add_member(longest, at_limit("\x00b"))
    await p.grant(longest, Organization, "acme", "admin")
    assert await p.check(at_limit("\x00b"), "admin", Organization, "acme")
    with pytest.raises(netabase.ValidationError) as caught:
        if field == "principal":
            await p.grant(over, Organization, "acme", "read")
        elif field == "group":
            await p.add_member(over, "x")
        else:
            await p.remove_member("x", over)
    assert caught.value.field == field
    assert str(MAX_NAME_KEY) in str(caught.value)


async def test_a_role_whose_keys_would_not_fit_is_refused(backend_url: str) -> None:
    roles = netabase.Roles({"r" * 300: ("read",), "read": ("read",)})
    async with netabase.open(backend_url, models=PERM_MODELS, roles=roles) as db:
        with pytest.raises(netabase.ValidationError) as caught:
            await db.permissions.grant("alice", Organization, "acme", "r" * 300)
        assert caught.value.field == "role"


async def test_one_bad_write_fails_alone(db: netabase.Database) -> None:
    """A request whose keys the backend refuses, bypassing the caller's validation, fails
    without failing the 40 grants served in the same batch."""
    actor = db._runtime.permission_actor
    key = db._runtime.models["Organization"].encode_key("acme")
    grants = [Request(GrantRole(f"user{i}", "Organization", key, "read")) for i in range(40)]
    bad = Request(AddMember("\x00" * 200, "\x00" * 199 + "a"))
    requests = [*grants[:20], bad, *grants[20:]]
    batches = actor.lane.counters.batches
    now = trio.current_time()
    for request in requests:
        actor.mailbox.put_nowait(request, now)  # raises trio.WouldBlock when full
    results = [await outcome.acapture(request.wait) for request in requests]
    assert actor.lane.counters.batches == batches + 1, "all 41 requests were served in one batch"
    failed = [r for r in results if isinstance(r, outcome.Error)]
    assert len(failed) == 1
    assert isinstance(failed[0].error, netabase.KeyTooLarge)
    assert isinstance(results[20], outcome.Error)
    allowed = await db.permissions.check_many(
        [(f"user{i}", "read", Organization, "acme") for i in range(40)]
    )
    assert allowed == [True] * 40


# -- against a brute-force reference ---------------------------------------------------------

NODES = range(4)
PARENTS = {0: None, 1: 0, 2: 1, 3: None}
LEVEL = {"read": 0, "write": 1, "admin": 2}
pieces = st.text(alphabet="a\x00\xff\u00e9", min_size=1, max_size=3)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Names with NULs, 0xff, one a prefix of another and some at the size limit; changes."""
    base = draw(st.lists(pieces, min_size=2, max_size=4, unique=True))
    shorter = draw(st.sampled_from(base))
    longest = at_limit(draw(st.sampled_from(base)))
    names = sorted({*base, shorter + "\x00" + draw(pieces), longest, longest[:-1]})
    name = st.sampled_from(names)
    change = st.one_of(
        st.tuples(st.just("grant"), name, st.sampled_from(NODES), st.sampled_from(list(LEVEL))),
        st.tuples(st.just("revoke"), name, st.sampled_from(NODES)),
        st.tuples(st.just("add"), name, name),
        st.tuples(st.just("remove"), name, name),
    )
    return names, draw(st.lists(change, max_size=14))


@attrs.define
class Reference:
    grants: set[tuple[str, int, str]] = attrs.Factory(set)
    members: set[tuple[str, str]] = attrs.Factory(set)

    def closure(self, principal: str) -> set[str]:
        found, frontier = {principal}, [principal]
        while frontier:
            member = frontier.pop()
            for group, m in self.members:
                if m == member and group not in found:
                    found.add(group)
                    frontier.append(group)
        return found

    def allowed(self, principal: str, action: str, node: int) -> bool:
        who, chain = self.closure(principal), {node}
        while (parent := PARENTS[node]) is not None:
            chain.add(node := parent)
        return any(
            p in who and n in chain and LEVEL[role] >= LEVEL[action] for p, n, role in self.grants
        )


async def _run_scenario(url: str, names: list[str], changes: list[tuple[Any, ...]]) -> None:
    async with netabase.open(url, models=PERM_MODELS) as db:
        await db.store(Node).insert_many([Node(n, PARENTS[n]) for n in NODES])
        p, ref = db.permissions, Reference()
        for change in changes:
            if change[0] == "grant":
                _, who, node, role = change
                await p.grant(who, Node, node, role)
                ref.grants.add((who, node, role))
            elif change[0] == "revoke":
                _, who, node = change
                held = {g for g in ref.grants if g[:2] == (who, node)}
                assert await p.revoke(who, Node, node) == len(held)
                ref.grants -= held
            elif change[0] == "add":
                _, group, member = change
                cycle = group == member or member in ref.closure(group)
                try:
                    await p.add_member(group, member)
                except netabase.HierarchyCycle:
                    assert cycle
                    continue
                assert not cycle
                ref.members.add((group, member))
            else:
                _, group, member = change
                assert await p.remove_member(group, member) is ((group, member) in ref.members)
                ref.members.discard((group, member))
        questions = [(n, a, node) for n in names for a in ("read", "write") for node in NODES]
        got = await p.check_many([(n, a, Node, node) for n, a, node in questions])
        assert got == [ref.allowed(*q) for q in questions]
        for name in names:
            for action in ("read", "admin"):
                listed = [k async for k in p.list_objects(name, action, Node, page_size=2)]
                assert listed == [n for n in NODES if ref.allowed(name, action, n)], name


def test_names_match_brute_force(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server: RedisServer | None = (
        request.getfixturevalue("redis_server") if backend_kind == "redis" else None
    )

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenarios())
    def run(scenario: tuple[list[str], list[tuple[Any, ...]]]) -> None:
        url = make_url(backend_kind, tmp_path / f"ex{next(_examples)}", server)
        trio.run(_run_scenario, url, *scenario)

    run()
