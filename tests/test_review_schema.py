"""Review of the stored schema: changes that opened without `SchemaMismatch` yet read records
wrongly, and state one database's history leaked into another."""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import msgpack
import pytest

import netabase
from netabase import demo
from netabase._stored_schema import SPACE as SCHEMA
from netabase._stored_schema import compare, describe
from netabase.backends import Delete, WriteBatch
from netabase.testing import backend_kit as kv


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


async def gadgets_with_color_added(url: str) -> None:
    async with netabase.open(url, models=[GadgetV1]) as db:
        await db.store(GadgetV1).insert(GadgetV1("g1"))
    async with netabase.open(url, models=[Gadget]) as db:  # records `color` as added
        assert await db.store(Gadget).get("g1") == Gadget("g1")


async def a_gadget_without_color(url: str) -> None:
    """A database that never held GadgetV1 records: every record must have `color`."""
    async with netabase.open(url, models=[Gadget]) as db:
        key = netabase.info_of(Gadget).encode_key("g2")
        await kv.insert(db.backend, "Gadget", key, raw_record({"id": "g2"}))


async def test_a_field_added_in_one_database_is_not_optional_in_the_next(tmp_path: Path) -> None:
    old, new = f"lmdb://{tmp_path / 'old'}", f"lmdb://{tmp_path / 'new'}"
    await gadgets_with_color_added(old)
    await a_gadget_without_color(new)
    async with netabase.open(new, models=[Gadget]) as db:
        with pytest.raises(netabase.CorruptRecord, match=r"missing field\(s\) color"):
            await db.store(Gadget).get("g2")
    async with netabase.open(old, models=[Gadget]) as db:
        assert await db.store(Gadget).get("g1") == Gadget("g1")


async def test_databases_open_at_once_with_different_added_fields_are_refused(
    tmp_path: Path,
) -> None:
    """The allowance belongs to the model class: a second database that would read the first
    one's incomplete records silently (or the reverse) is refused at open instead."""
    old, new = f"lmdb://{tmp_path / 'old'}", f"lmdb://{tmp_path / 'new'}"
    await gadgets_with_color_added(old)
    await a_gadget_without_color(new)
    async with netabase.open(old, models=[Gadget]):
        with pytest.raises(netabase.SchemaMismatch, match="color were added later"):
            async with netabase.open(new, models=[Gadget]):
                pass
    async with netabase.open(new, models=[Gadget]) as db:  # alone, it reads strictly
        with pytest.raises(netabase.CorruptRecord, match=r"missing field\(s\) color"):
            await db.store(Gadget).get("g2")
        with pytest.raises(netabase.SchemaMismatch, match="color were added later"):
            async with netabase.open(old, models=[Gadget]):
                pass


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


# -- strict input and decoding: a value of another type is refused, never converted ---------


@attrs.frozen
class Dot:
    x: int


@netabase.model(key="id", name="Sample")
@attrs.frozen
class Sample:
    id: str
    size: int = 0
    ratio: float = 0.0
    flag: bool = False
    name: str = ""
    tags: tuple[str, ...] = ()
    pair: tuple[int, int] = (0, 0)
    dots: dict[str, Dot] = attrs.Factory(dict)
    raw: bytes = b""
    blob: Any = None


SAMPLE = netabase.info_of(Sample)
STORED = {
    "id": "k",
    "size": 0,
    "ratio": 0.0,
    "flag": False,
    "name": "",
    "tags": [],
    "pair": [0, 0],
    "dots": {},
    "raw": b"",
    "blob": None,
}
WRONG = [
    ({"size": "5"}, "size", "expected int, got str"),
    ({"size": 3.7}, "size", "expected int, got float"),
    ({"size": True}, "size", "expected int, got bool"),
    ({"flag": "false"}, "flag", "expected bool, got str"),
    ({"flag": 0}, "flag", "expected bool, got int"),
    ({"name": 5}, "name", "expected str, got int"),
    ({"ratio": "1.5"}, "ratio", "expected float, got str"),
    ({"tags": "abc"}, "tags", "expected a tuple, got str"),
    ({"tags": {"a": 1}}, "tags", "expected a tuple, got dict"),
    ({"pair": "12"}, "pair", "expected a sequence of 2"),
    ({"dots": {1: {"x": 1}}}, "dots", "expected str, got int"),
    ({"dots": {"a": {"x": "1"}}}, "dots", "expected int, got str"),
    ({"raw": [1, 2]}, "raw", "expected bytes, got list"),
]


@pytest.mark.parametrize(("change", "field", "problem"), WRONG, ids=[str(w[0]) for w in WRONG])
def test_input_of_another_type_is_refused_not_converted(
    change: dict[str, object], field: str, problem: str
) -> None:
    with pytest.raises(netabase.ValidationError, match=problem):
        SAMPLE.structure({"id": "k", **change})


@pytest.mark.parametrize(("change", "field", "problem"), WRONG, ids=[str(w[0]) for w in WRONG])
def test_a_stored_value_of_another_type_is_corrupt_not_converted(
    change: dict[str, object], field: str, problem: str
) -> None:
    data = raw_record({**STORED, **change})
    with pytest.raises(netabase.CorruptRecord, match=problem):
        SAMPLE.codec.decode(data, SAMPLE.encode_key("k"))


def test_exact_values_still_structure_and_decode() -> None:
    record = Sample("k", 3, 1, True, "n", ("a",), (1, 2), {"d": Dot(1)}, b"r", {"any": [1]})
    assert SAMPLE.codec.decode(SAMPLE.codec.encode(record), SAMPLE.encode_key("k")) == record
    assert SAMPLE.structure(attrs.asdict(record, recurse=False) | {"dots": {"d": {"x": 1}}}) == (
        record
    )
    assert SAMPLE.structure({"id": "k", "ratio": 2}).ratio == 2.0  # an int is a float value


def test_cli_import_refuses_a_map_or_string_for_a_collection(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'shop'}"
    with netabase.connect_sync(url, models=demo.MODELS) as db:
        db.store(demo.Customer).insert(demo.Customer("c1", "C1", "c1@x"))
        db.store(demo.Product).insert(demo.Product("p1", "Pen", 150))
    path = tmp_path / "orders.jsonl"
    path.write_text('{"id": 1, "customer": "c1", "products": {"p1": 2}}\n')
    result = subprocess.run(
        [sys.executable, "-m", "netabase", "import", url, "Order", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "products: expected a tuple, got dict" in result.stderr
    with netabase.connect_sync(url, models=demo.MODELS) as db:
        assert db.store(demo.Order).get(1) is None


# -- a database written before schemas were stored ------------------------------------------


@netabase.model(key="id", name="Lamp")
@attrs.frozen
class Lamp:
    id: str
    color: str = "grey"


async def test_a_pre_schema_database_with_records_from_before_a_field_was_added_opens(
    tmp_path: Path,
) -> None:
    """The previous release filled a missing field that has a default: its databases hold
    records from before and after such a field was added, in any key order."""
    for first_lacks_it in (True, False):
        url = f"lmdb://{tmp_path / str(first_lacks_it)}"
        async with netabase.open(url, models=[Lamp]) as db:
            await db.backend.apply([WriteBatch((Delete(SCHEMA, b"Lamp"),))])  # no schema yet
            old, new = ("a", "b") if first_lacks_it else ("b", "a")
            encode = netabase.info_of(Lamp).encode_key
            await kv.insert(db.backend, "Lamp", encode(old), raw_record({"id": old}))
            await kv.insert(
                db.backend, "Lamp", encode(new), raw_record({"id": new, "color": "red"})
            )
        async with netabase.open(url, models=[Lamp]) as db:
            assert await db.store(Lamp).get_many(["a", "b"]) == [
                Lamp(old) if old == "a" else Lamp("a", "red"),
                Lamp(old) if old == "b" else Lamp("b", "red"),
            ]


# -- the default of a field records may lack is part of what they hold ----------------------


@netabase.model(key="id", name="Gadget")
@attrs.frozen
class GadgetRecolored:
    id: str
    color: str = "blue"


async def test_changing_the_default_of_an_added_field_is_refused(tmp_path: Path) -> None:
    """g1 was stored before `color` existed: it reads the default, so a new default would
    change it silently."""
    url = f"lmdb://{tmp_path / 'db'}"
    await gadgets_with_color_added(url)
    with pytest.raises(
        netabase.SchemaMismatch, match="field 'color' was added with default 'grey'"
    ):
        async with netabase.open(url, models=[GadgetRecolored]):
            pass
    async with netabase.open(url, models=[Gadget]) as db:
        assert await db.store(Gadget).get("g1") == Gadget("g1", "grey")


def test_the_default_of_a_field_every_record_holds_may_change() -> None:
    found, _ = compare(
        describe(netabase.info_of(Gadget)), describe(netabase.info_of(GadgetRecolored))
    )
    assert found == []


# -- attrs converters ------------------------------------------------------------------------


@attrs.frozen
class Scaled:
    id: str
    x: int = attrs.field(default=0, converter=lambda value: value * 10)


@attrs.frozen
class Inner:
    x: int = attrs.field(default=0, converter=int)


@attrs.frozen
class Outer:
    id: str
    inner: tuple[Inner, ...] = ()


def test_a_converter_is_refused_at_model_definition() -> None:
    """Decoding rebuilds a record through ``__init__``, so a converter that is not idempotent
    would change the stored value on each read (30 read as 300): it is refused up front."""
    with pytest.raises(netabase.ModelDefinitionError, match=r"Scaled\.x has a converter") as info:
        netabase.model(key="id")(Scaled)
    assert info.value.field == "x"
    with pytest.raises(netabase.ModelDefinitionError, match=r"Inner\.x has a converter"):
        netabase.model(key="id")(Outer)


# -- a stored map with a field twice ---------------------------------------------------------


def packed_map(*pairs: tuple[object, object]) -> bytes:
    """A record whose msgpack map holds ``pairs`` as written, duplicates included."""
    body = b"".join(msgpack.packb(key) + msgpack.packb(value) for key, value in pairs)
    return bytes((1, 1, 0x80 | len(pairs))) + body


@netabase.model(key="id", name="Wide")
@attrs.frozen
class Wide:
    id: str
    f0: int = 0
    f1: int = 0
    f2: int = 0
    f3: int = 0
    f4: int = 0
    f5: int = 0
    f6: int = 0
    f7: int = 0
    f8: int = 0
    f9: int = 0
    f10: int = 0
    f11: int = 0
    f12: int = 0
    f13: int = 0
    f14: int = 0
    f15: int = 0  # 17 fields: a map16 header


@pytest.mark.parametrize(
    "pairs",
    [
        (("id", "k"), ("color", "red"), ("color", "blue")),
        (("id", "k"), ("id", "j"), ("color", "red")),
        (("id", "k"), ("id", "k")),  # `color` may be missing while an old database is open
    ],
    ids=["field", "key field", "with a missing field"],
)
async def test_a_stored_map_with_a_field_twice_is_corrupt(
    tmp_path: Path, pairs: tuple[tuple[object, object], ...]
) -> None:
    url = f"lmdb://{tmp_path / 'db'}"
    await gadgets_with_color_added(url)
    info = netabase.info_of(Gadget)
    async with netabase.open(url, models=[Gadget]):
        with pytest.raises(netabase.CorruptRecord, match="a field is stored twice"):
            info.codec.decode(packed_map(*pairs), info.encode_key("k"))


def test_records_of_more_than_fifteen_fields_decode() -> None:
    info = netabase.info_of(Wide)
    record = Wide("k", *range(16))
    assert info.codec.decode(info.codec.encode(record), info.encode_key("k")) == record
