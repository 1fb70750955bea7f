"""Field and record rules: attrs validators, model validators, unique fields, every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest
import trio

import netabase
from netabase.testing import check_integrity


def _has_at(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if "@" not in value:
        raise ValueError(f"{value!r} is not an email address")


def _positive_total(order: Shipment) -> str | None:
    return None if order.quantity * order.unit_cents > 0 else "total must be positive"


@netabase.model(key="id", unique=["email"])
@attrs.frozen
class Member:
    id: int
    email: str = attrs.field(validator=_has_at)
    handle: str = ""


@netabase.model(key="id", validators=[_positive_total])
@attrs.frozen
class Shipment:
    id: int
    quantity: int = attrs.field(validator=attrs.validators.gt(0))
    unit_cents: int = 0


MODELS = [Member, Shipment]


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=MODELS) as database:
        yield database


async def test_attrs_validators_run_on_every_write(db: netabase.Database) -> None:
    members = db.store(Member)
    good = Member(1, "a@x")
    bad = attrs.evolve(good, handle="h")
    object.__setattr__(bad, "email", "no-at-sign")  # as if built around attrs' checks
    with pytest.raises(netabase.ValidationError) as info:
        await members.insert(bad)
    error = info.value
    assert (error.model, error.field, error.key) == ("Member", "email", 1)
    assert error.rule is not None and "_has_at" in error.rule
    assert "not an email address" in str(error)
    assert await members.count() == 0


async def test_model_validators_name_the_rule(db: netabase.Database) -> None:
    shipments = db.store(Shipment)
    with pytest.raises(netabase.ValidationError, match=r"total must be positive.*_positive_total"):
        await shipments.insert(Shipment(1, 2, 0))
    await shipments.insert(Shipment(1, 2, 5))
    assert await shipments.count() == 1


async def test_unique_field_is_enforced_atomically(db: netabase.Database) -> None:
    members = db.store(Member)
    await members.insert(Member(1, "a@x"))
    with pytest.raises(netabase.ValidationError) as info:
        await members.insert(Member(2, "a@x"))
    assert (info.value.field, info.value.rule) == ("email", "unique")
    assert "already used by Member key 1" in str(info.value)
    with pytest.raises(netabase.ValidationError, match="unique"):
        await members.insert_many([Member(3, "b@x"), Member(4, "b@x")])
    assert await members.count() == 1
    await members.insert_many([Member(6, "d@x"), Member(6, "e@x")])  # the last one wins
    assert await members.get(6) == Member(6, "e@x")
    await members.remove(6)
    await members.insert(Member(1, "c@x"))  # changing it frees the old value
    await members.insert(Member(2, "a@x"))
    await members.remove(2)  # removing it frees the value too
    await members.insert(Member(5, "a@x"))
    assert await check_integrity(db) == []


async def test_one_call_is_judged_on_its_end_state(db: netabase.Database) -> None:
    members = db.store(Member)
    await members.insert_many([Member(1, "a@x"), Member(2, "b@x")])
    await members.insert_many([Member(1, "b@x"), Member(2, "a@x")])  # a swap
    assert await members.get_many([1, 2]) == [Member(1, "b@x"), Member(2, "a@x")]
    await members.insert_many([Member(2, "c@x"), Member(1, "a@x")])  # release, then take
    assert await members.get_many([1, 2]) == [Member(1, "a@x"), Member(2, "c@x")]
    await members.insert(Member(4, "b@x"))  # released by 1, free again
    with pytest.raises(netabase.ValidationError, match="already used by Member key 2"):
        await members.insert_many([Member(1, "c@x"), Member(4, "d@x")])
    assert await members.get_many([1, 4]) == [Member(1, "a@x"), Member(4, "b@x")]
    assert await check_integrity(db) == []


async def test_racing_writers_cannot_share_a_unique_value(db: netabase.Database) -> None:
    members = db.store(Member)
    winners: list[int] = []

    async def claim(n: int) -> None:
        try:
            await members.insert(Member(n, "same@x"))
            winners.append(n)
        except netabase.ValidationError:
            pass

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(claim, n)
    assert len(winners) == 1
    assert [m.id async for m in members.scan()] == winners
