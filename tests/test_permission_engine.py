"""The permission package's parts on their own: the proof engine, listings and write planning,
built on an open database's backend and query lanes but without the permission actor."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import netabase
from netabase.actors._messages import AddMember
from netabase.backends import ExpectKeys
from netabase.permissions._listings import Listings
from netabase.permissions._proofs import ProofEngine
from netabase.permissions._writes import WritePlanner

from .perm_models import PERM_MODELS, Department, Document, Organization, Project


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=PERM_MODELS) as database:
        await database.store(Organization).insert(Organization("acme"))
        await database.store(Department).insert(Department("eng", "acme"))
        await database.store(Project).insert(Project("rocket", "eng"))
        await database.store(Document).insert_many(
            [Document("d1", "rocket"), Document("d2", "rocket")]
        )
        await database.permissions.add_member("staff", "alice")
        await database.permissions.grant("staff", Department, "eng", "read")
        yield database


def engine_of(db: netabase.Database) -> ProofEngine:
    runtime = db._runtime
    roles = runtime.permission_actor.roles
    return ProofEngine(runtime.backend, runtime.schema, roles, ask=runtime.ask, cache_size=10)


def key(db: netabase.Database, model: type, value: str) -> bytes:
    return db._runtime.models[model.__name__].encode_key(value)


async def test_the_engine_proves_and_caches_without_an_actor(db: netabase.Database) -> None:
    engine = engine_of(db)
    assert await engine.sync()  # the first read of the revision starts its caches
    d1 = ("Document", key(db, Document, "d1"))
    chains = await engine.chains({(d1, None)})
    assert [model for model, _ in chains[(d1, None)][0]] == [
        "Document",
        "Project",
        "Department",
        "Organization",
    ]
    assert (await engine.expand({"alice"}))["alice"] == {"alice": None, "staff": "alice"}
    query = ("alice", "read", "Document", d1[1], None)
    verdict = (await engine.prove([query]))[query]
    assert verdict.allowed and verdict.exists
    assert verdict.proof == ("staff", ("Department", key(db, Department, "eng")), "read")
    assert await engine.decide([query, query]) == {query: True}
    assert (engine.hits, engine.misses) == (0, 2)  # both asked before either was decided
    assert await engine.decide([query]) == {query: True}
    assert (engine.hits, engine.misses) == (1, 2)
    assert not await engine.sync()  # nothing changed: the caches stay
    explanation = await engine.explain(query)
    assert explanation.groups == ("alice", "staff")
    assert explanation.grant == netabase.Grant("staff", "Department", "eng", "read")
    await db.permissions.grant("bob", Organization, "acme", "read")
    assert await engine.sync() and not engine.decisions  # a new revision: every cache went


async def test_listings_page_through_what_the_engine_allows(db: netabase.Database) -> None:
    engine = engine_of(db)
    await engine.sync()
    listings = Listings(db._runtime.backend, db._runtime.schema, engine)
    first = await listings.page("alice", "read", "Document", None, 1)
    assert first == [key(db, Document, "d1")]
    assert await listings.page("alice", "read", "Document", first[-1], 5) == [
        key(db, Document, "d2")
    ]
    assert await listings.page("bob", "read", "Document", None, 5) == []


async def test_the_planner_refuses_a_membership_cycle(db: netabase.Database) -> None:
    planner = WritePlanner(db._runtime.backend)
    with pytest.raises(netabase.HierarchyCycle) as caught:
        await planner.plan(AddMember("alice", "staff"))
    assert caught.value.field == "members"
    batch, reply = await planner.plan(AddMember("everyone", "staff"))
    assert reply is None and all(isinstance(c, ExpectKeys) for c in batch.expects)
