"""Permission conditions: rules evaluated on the record and the principal, every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

import netabase

from .perm_models import Department, Organization, Project


@netabase.condition("is_author")
def is_author(principal: str, post: Post) -> bool:
    return post.author == principal


@netabase.condition("readable")
def readable(principal: str, post: Post) -> bool:
    return post.published or post.author == principal


@netabase.condition("explodes")
def explodes(principal: str, record: Any) -> bool:
    raise RuntimeError("boom")


@netabase.model(
    key="id",
    parent="project",
    rules=[
        netabase.allow("write", when="is_author"),
        netabase.allow("read", when="is_author"),
        netabase.require("read", when="readable"),
        netabase.require("admin", when="explodes"),
    ],
)
@attrs.frozen
class Post:
    id: str
    project: str = netabase.link(Project, on_delete="cascade")
    author: str = ""
    published: bool = False


MODELS = [Organization, Department, Project, Post]


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=MODELS) as database:
        await database.store(Organization).insert(Organization("acme"))
        await database.store(Department).insert(Department("eng", "acme"))
        await database.store(Project).insert(Project("rocket", "eng"))
        await database.store(Post).insert_many(
            [Post("draft", "rocket", "alice"), Post("news", "rocket", "alice", published=True)]
        )
        yield database


async def test_allow_rules_need_no_grant(db: netabase.Database) -> None:
    perms = db.permissions
    assert await perms.check("alice", "write", Post, "draft")
    assert not await perms.check("bob", "write", Post, "draft")
    explanation = await perms.explain("alice", "write", Post, "draft")
    assert explanation.allowed and explanation.condition == "is_author"
    assert "is_author" in str(explanation)


async def test_require_rules_restrict_grants(db: netabase.Database) -> None:
    perms = db.permissions
    await perms.grant("bob", Project, "rocket", "admin")
    assert await perms.check("bob", "read", Post, "news")
    assert not await perms.check("bob", "read", Post, "draft")
    explanation = await perms.explain("bob", "read", Post, "draft")
    assert not explanation.allowed and explanation.condition == "readable"
    await db.store(Post).insert(Post("draft", "rocket", "alice", published=True))
    assert await perms.check("bob", "read", Post, "draft")  # the record changed: re-decided


async def test_a_raising_condition_denies_and_names_itself(db: netabase.Database) -> None:
    perms = db.permissions
    await perms.grant("bob", Project, "rocket", "admin")
    assert not await perms.check("bob", "admin", Post, "news")
    explanation = await perms.explain("bob", "admin", Post, "news")
    assert not explanation.allowed
    assert explanation.error is not None and "'explodes'" in explanation.error
    assert "RuntimeError: boom" in explanation.error
    assert await perms.check("bob", "read", Post, "news")  # the actor keeps serving


async def test_listing_and_enforcement_honour_conditions(db: netabase.Database) -> None:
    perms = db.permissions
    await perms.grant("bob", Project, "rocket", "read")
    assert [k async for k in perms.list_objects("bob", "read", Post)] == ["news"]
    assert [k async for k in perms.list_objects("alice", "write", Post)] == ["draft", "news"]
    bob = db.as_principal("bob").store(Post)
    assert [p.id async for p in bob.scan()] == ["news"]
    with pytest.raises(netabase.PermissionDenied):
        await bob.get("draft")
    alice = db.as_principal("alice").store(Post)
    await alice.insert(Post("draft", "rocket", "alice", published=True))
    with pytest.raises(netabase.PermissionDenied):
        await alice.insert(Post("other", "rocket", "carol"))


async def test_unregistered_condition_is_refused_when_opening() -> None:
    @netabase.model(key="id", rules=[netabase.allow("read", when="no_such_condition")])
    @attrs.frozen
    class Secret:
        id: int

    with pytest.raises(netabase.ModelDefinitionError, match="no_such_condition"):
        async with netabase.open("memory://", models=[Secret]):
            pass


@netabase.condition("says_no")
def says_no(principal: str, record: Any) -> bool:
    return "no"  # type: ignore[return-value]  # the mistake under test


async def test_conditions_and_validators_must_be_plain_functions_answering_bools() -> None:
    @netabase.model(key="id", rules=[netabase.allow("read", when="says_no")])
    @attrs.frozen
    class Memo:
        id: str

    async with netabase.open("memory://", models=[Memo]) as db:
        await db.store(Memo).insert(Memo("m"))
        assert not await db.permissions.check("eve", "read", Memo, "m")  # "no" is truthy
        explanation = await db.permissions.explain("eve", "read", Memo, "m")
        assert explanation.error is not None and "'says_no'" in explanation.error
        assert "True or False" in explanation.error

    async def never(principal: str, record: Any) -> bool:
        return False

    with pytest.raises(TypeError, match="is async"):
        netabase.register_condition("never", never)

    async def later(record: Any) -> bool:
        return False

    with pytest.raises(netabase.ModelDefinitionError, match="is async"):

        @netabase.model(key="id", validators=[later])
        @attrs.frozen
        class Checked:
            id: int
