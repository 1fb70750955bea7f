"""Adversarial review of generated keys (``netabase.auto()``): each test is a defect found,
fixed in netabase/ by the commit that follows it."""

from __future__ import annotations

import attrs
import pytest

import netabase

from .auto_models import AUTO_MODELS, Board, Card, Ticket


@netabase.model(key="_id")
@attrs.frozen
class Private:
    """A generated key whose attribute is private: attrs' ``__init__`` takes it as ``id``."""

    text: str = ""
    _id: int = netabase.auto()


@netabase.model(key="id", unique=["code"])
@attrs.frozen
class Coded:
    """A unique int value beside a generated key."""

    code: int = 0
    id: int = netabase.auto()


async def test_a_generated_key_never_collides_with_an_explicit_key_of_its_batch(
    backend_url: str,
) -> None:
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        tickets = db.store(Ticket)
        made = await tickets.insert_many([Ticket("generated"), Ticket("explicit", id=1)])
        assert made[1] == Ticket("explicit", id=1) and made[0].id != 1
        assert await tickets.get(made[0].id) == made[0]  # not replaced by the explicit one
        assert await tickets.count() == 2

        async with db.transaction() as tx:
            staged = await tx.store(Ticket).insert_many(
                [Ticket("tx generated"), Ticket("tx explicit", id=made[0].id + 1)]
            )
        assert staged[0].id != staged[1].id
        assert await tickets.get(staged[0].id) == staged[0]

        await db.store(Board).insert(Board("b"))
        await db.permissions.grant("ann", Board, "b", "write")
        cards = db.as_principal("ann").store(Card)
        both = await cards.insert_many([Card(board="b", slug="g"), Card(board="b", slug="e", id=1)])
        assert both[0].id != 1 and await db.store(Card).get(both[0].id) == both[0]
        async with db.as_principal("ann").transaction() as tx:
            pair = await tx.store(Card).insert_many(
                [Card(board="b", slug="tg"), Card(board="b", slug="te", id=both[0].id + 1)]
            )
        assert pair[0].id != pair[1].id and await db.store(Card).get(pair[0].id) == pair[0]


async def test_a_private_key_attribute_is_filled_by_its_init_name(backend_url: str) -> None:
    async with netabase.open(backend_url, models=[Private]) as db:
        store = db.store(Private)
        one = await store.insert(Private("one"))
        assert one == Private("one", id=1) and await store.get(1) == one
        assert [r._id for r in await store.insert_many([Private("a"), Private("b")])] == [2, 3]
        async with db.transaction() as tx:
            staged = await tx.store(Private).insert(Private("tx"))
        assert await store.get(staged._id) == staged


async def test_an_int_key_too_long_for_the_encoding_is_a_validation_error(
    backend_url: str,
) -> None:
    async with netabase.open(backend_url, models=AUTO_MODELS) as db:
        tickets = db.store(Ticket)
        huge = 1 << (8 * 300)  # under the 511-byte limit, over the 255 bytes an int element has
        with pytest.raises(netabase.ValidationError) as written:
            await tickets.insert(Ticket("huge", id=huge))
        with pytest.raises(netabase.ValidationError) as read:
            await tickets.get(huge)
        for refused in (written, read):
            assert refused.value.model == "Ticket" and refused.value.field == "id"
        assert (await tickets.insert(Ticket("then"))).id == 1


async def test_a_unique_int_too_long_for_the_encoding_is_a_validation_error() -> None:
    async with netabase.open("memory://", models=[Coded]) as db:
        with pytest.raises(netabase.ValidationError) as refused:
            await db.store(Coded).insert(Coded(code=1 << (8 * 300)))
        assert refused.value.model == "Coded" and refused.value.field == "code"
