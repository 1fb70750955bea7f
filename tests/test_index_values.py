"""Index value encodings sort exactly as the values do, and declarations are checked."""

from __future__ import annotations

import datetime
import uuid

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given

import netabase
from netabase._index_values import encode_datetime, shape_of

TYPES = {
    int: st.integers(-(1 << 63), (1 << 64) - 1),
    str: st.text(),
    bytes: st.binary(),
    float: st.floats(allow_nan=False),
    bool: st.booleans(),
    uuid.UUID: st.uuids(),
    datetime.date: st.dates(),
    datetime.datetime: st.datetimes(),
}


@pytest.mark.parametrize("tp", list(TYPES), ids=lambda tp: tp.__name__)
@given(data=st.data())
def test_encoding_order_is_value_order(tp: type, data: st.DataObject) -> None:
    values = data.draw(st.lists(TYPES[tp], min_size=2, max_size=8))
    encode = shape_of(tp | None).encode  # type: ignore[union-attr, operator]
    by_bytes = sorted(values, key=encode)
    assert all(by_bytes[i] <= by_bytes[i + 1] for i in range(len(by_bytes) - 1))
    for a in values:
        for b in values:
            assert (encode(a) == encode(b)) == (a == b)
    assert encode(None) < min(encode(v) for v in values)


@given(st.lists(st.datetimes(timezones=st.timezones()), min_size=2, max_size=6))
def test_aware_datetimes_sort_by_instant(values: list[datetime.datetime]) -> None:
    encoded = [encode_datetime(value) for value in values]
    for a, ea in zip(values, encoded, strict=True):
        for b, eb in zip(values, encoded, strict=True):
            assert (ea < eb) == (a < b)
            assert (ea == eb) == (a == b)


def test_nan_and_unindexable_types_are_refused() -> None:
    @netabase.model(key="id")
    @attrs.frozen
    class Reading:
        id: int
        value: float = netabase.field(index=True, default=0.0)

    index = netabase.info_of(Reading).indexes[0]  # type: ignore[union-attr]
    with pytest.raises(netabase.ValidationError, match=r"Reading\.value.*NaN"):
        index.entries(Reading(1, float("nan")), b"k")
    with pytest.raises(netabase.ModelDefinitionError, match="cannot be indexed"):

        @netabase.model(key="id")
        @attrs.frozen
        class Bad:
            id: int
            blob: dict[str, int] = netabase.field(index=True, factory=dict)

    with pytest.raises(netabase.ModelDefinitionError, match="compound"):

        @netabase.model(key="id", indexes=[("tags", "id")])
        @attrs.frozen
        class Tagged:
            id: int
            tags: frozenset[str] = frozenset()

    with pytest.raises(netabase.ModelDefinitionError, match="unknown field"):

        @netabase.model(key="id", indexes=[("nope",)])
        @attrs.frozen
        class Unknown:
            id: int


def test_declared_indexes_and_unique_fields() -> None:
    @netabase.model(key="id", indexes=[("customer", "placed_at")])
    @attrs.frozen
    class Order:
        id: int
        customer: str
        placed_at: datetime.datetime = netabase.field(index=True)
        code: str = netabase.field(unique=True, default="")
        tags: tuple[str, ...] = netabase.field(index=True, default=())

    info = netabase.info_of(Order)
    assert info is not None
    assert [index.fields for index in info.indexes] == [
        ("placed_at",),
        ("tags",),
        ("customer", "placed_at"),
    ]
    assert info.unique_fields == ("code",)
    tags = info.indexes[1]
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    entries = tags.entries(Order(1, "c", when, tags=("a", "b", "a")), b"\x15\x01")
    assert len(entries) == 2
    assert tags.space == "~ix.Order.tags"
