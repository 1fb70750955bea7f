"""Review of the stored schema: changes that opened without `SchemaMismatch` yet read records
wrongly, and state one database's history leaked into another."""

from __future__ import annotations

import enum
from pathlib import Path

import attrs
import msgpack
import pytest

import netabase
from netabase._stored_schema import compare, describe


def raw_record(fields: dict[str, object]) -> bytes:
    return bytes((1, 1)) + msgpack.packb(fields, use_bin_type=True)


# -- a field added by a recorded change may be missing only in that database -----------------


@netabase.model(key="id", name="Gadget")
@attrs.frozen
class GadgetV1:
    id: str


@netabase.model(key="id", name="Gadget")
@attrs.frozen
class Gadget:
    id: str
    color: str = "grey"


async def test_a_field_added_in_one_database_is_not_optional_in_another(tmp_path: Path) -> None:
    old, new = f"lmdb://{tmp_path / 'old'}", f"lmdb://{tmp_path / 'new'}"
    async with netabase.open(old, models=[GadgetV1]) as db:
        await db.store(GadgetV1).insert(GadgetV1("g1"))
    async with netabase.open(old, models=[Gadget]) as db:  # records `color` as added
        assert await db.store(Gadget).get("g1") == Gadget("g1")
        # A database that never held GadgetV1 records: every record must have `color`.
        async with netabase.open(new, models=[Gadget]) as fresh:
            key = netabase.info_of(Gadget).encode_key("g2")
            await fresh.backend.insert("Gadget", key, raw_record({"id": "g2"}))
            with pytest.raises(netabase.CorruptRecord, match=r"missing field\(s\) color"):
                await fresh.store(Gadget).get("g2")
        assert await db.store(Gadget).get("g1") == Gadget("g1")  # still readable here
    async with netabase.open(new, models=[Gadget]) as fresh:  # and after the other closed
        with pytest.raises(netabase.CorruptRecord, match=r"missing field\(s\) color"):
            await fresh.store(Gadget).get("g2")


# -- nested types: the stored description must tell apart what decodes differently ----------


@attrs.frozen
class Billing:
    street: str


@attrs.frozen
class Shipping:
    street: str


@attrs.frozen
class ShippingLabel:
    label: bytes


for _cls in (Billing, Shipping, ShippingLabel):  # as `billing.Address`, `shipping.Address`, ...
    _cls.__name__ = _cls.__qualname__ = "Address"
    _cls.__module__ = f"review.{_cls.__module__.rpartition('.')[2]}_{id(_cls)}"


@netabase.model(key="id", name="Order")
@attrs.frozen
class Order:
    id: str
    billing: Billing
    shipping: Shipping


@netabase.model(key="id", name="Order")
@attrs.frozen
class OrderRelabelled:
    id: str
    billing: Billing
    shipping: ShippingLabel


def test_two_nested_classes_with_one_name_are_both_described() -> None:
    found, _ = compare(
        describe(netabase.info_of(Order)), describe(netabase.info_of(OrderRelabelled))
    )
    assert found, "a nested class changed its fields and the open was not refused"
    assert any("shipping" in f or "Address" in f for f in found)


def test_reordering_fields_with_same_named_nested_classes_is_compatible() -> None:
    @netabase.model(key="id", name="Order")
    @attrs.frozen
    class OrderReordered:
        id: str
        shipping: Shipping
        billing: Billing

    found, _ = compare(
        describe(netabase.info_of(Order)), describe(netabase.info_of(OrderReordered))
    )
    assert found == []


@attrs.frozen
class Level:
    value: int


@netabase.model(key="id", name="Gauge")
@attrs.frozen
class Gauge:
    id: str
    level: Level


class LevelEnum(enum.Enum):
    LOW = 1


LevelEnum.__name__ = LevelEnum.__qualname__ = "Level"  # the same name, now an enum


@netabase.model(key="id", name="Gauge")
@attrs.frozen
class GaugeEnum:
    id: str
    level: LevelEnum


def test_a_nested_class_that_became_an_enum_is_a_difference() -> None:
    found, _ = compare(describe(netabase.info_of(Gauge)), describe(netabase.info_of(GaugeEnum)))
    assert found == [
        "nested type Level changed: stored fields (value: int), declared enum of 1 "
        "(declare Level as stored)"
    ]
