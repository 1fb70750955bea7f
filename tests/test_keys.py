"""Key encoding: order-preserving, self-delimiting and reversible (property tests)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from netabase import _keys

ints = st.integers(min_value=-(2**200), max_value=2**200)
texts = st.text()
blobs = st.binary()
uuids = st.uuids()
scalars = st.one_of(ints, texts, blobs, uuids)


def _sort_key(value: object) -> tuple[int, object]:
    rank = {bytes: 0, str: 1, int: 2, uuid.UUID: 3}[type(value)]
    return rank, value


@given(st.lists(ints, min_size=2, max_size=20))
def test_ints_sort_numerically(values: list[int]) -> None:
    assert sorted(values, key=_keys.encode_int) == sorted(values)


@given(st.lists(texts, min_size=2, max_size=20))
def test_strings_sort_by_code_point(values: list[str]) -> None:
    assert sorted(values, key=_keys.encode_str) == sorted(values)


@given(st.lists(blobs, min_size=2, max_size=20))
def test_bytes_sort_bytewise(values: list[bytes]) -> None:
    assert sorted(values, key=_keys.encode_bytes) == sorted(values)


@given(st.lists(uuids, min_size=2, max_size=20))
def test_uuids_sort_by_value(values: list[uuid.UUID]) -> None:
    assert sorted(values, key=_keys.encode_uuid) == sorted(values)


@given(st.lists(st.tuples(texts, ints), min_size=2, max_size=20))
def test_tuples_sort_element_by_element(values: list[tuple[str, int]]) -> None:
    assert sorted(values, key=_keys.encode_tuple) == sorted(values)


@given(scalars)
def test_scalars_decode_to_themselves(value: object) -> None:
    assert _keys.decode_single(_keys.encode_element(value)) == value


@given(st.lists(scalars, max_size=6).map(tuple))
def test_tuples_decode_to_themselves(value: tuple[object, ...]) -> None:
    assert _keys.decode_tuple(_keys.encode_tuple(value)) == value


@given(texts, texts)
def test_string_prefix_matches_exactly_the_strings_that_start_with_it(
    prefix: str, other: str
) -> None:
    encoded_prefix = _keys.encode_prefix(prefix)
    matches = _keys.encode_str(other).startswith(encoded_prefix)
    assert matches is other.startswith(prefix)


nul_heavy = st.text(alphabet="a\x00\x01\xff", max_size=4)
leading = st.one_of(nul_heavy, st.binary(max_size=4), ints)


@given(st.tuples(leading, ints), st.tuples(leading, ints))
def test_tuple_prefix_range_holds_exactly_the_equal_leading_elements(
    key: tuple[object, int], other: tuple[object, int]
) -> None:
    prefix = key[:1]
    lo = _keys.encode_prefix(prefix)
    hi = _keys.prefix_upper_bound(prefix, lo)
    encoded = _keys.encode_tuple(other)
    assert hi is not None
    assert (lo <= encoded < hi) is (other[0] == key[0] and type(other[0]) is type(key[0]))


@given(blobs)
def test_prefix_successor_bounds_the_prefix(prefix: bytes) -> None:
    upper = _keys.prefix_successor(prefix)
    if upper is None:
        assert prefix.strip(b"\xff") == b""
    else:
        assert upper > prefix and not upper.startswith(prefix)
        assert prefix + b"\xff" * 8 < upper


def _longer(value: object) -> object:
    """A str or bytes that starts with ``value`` and a NUL (an int stays itself)."""
    if isinstance(value, str):
        return value + "\x00"
    if isinstance(value, bytes):
        return value + b"\x00"
    return value


@given(st.lists(leading, min_size=1, max_size=3).map(tuple), st.lists(leading, max_size=4))
def test_component_range_holds_exactly_the_keys_with_those_leading_elements(
    prefix: tuple[object, ...], rest: list[object]
) -> None:
    lo, hi = _keys.component_range(_keys.encode_tuple(prefix))
    for other in (prefix + tuple(rest), tuple(rest), (*prefix[:-1], _longer(prefix[-1]), *rest)):
        encoded = _keys.encode_tuple(other)
        same = len(other) >= len(prefix) and all(
            a == b and type(a) is type(b) for a, b in zip(other, prefix, strict=False)
        )
        assert (lo <= encoded < hi) is same


@given(nul_heavy, nul_heavy, st.binary(max_size=8))
def test_a_name_range_never_takes_in_a_longer_name(name: str, other: str, tail: bytes) -> None:
    lo, hi = _keys.component_range(_keys.encode_str(name))
    encoded = _keys.encode_str(other) + _keys.encode_bytes(tail)
    assert (lo <= encoded < hi) is (other == name)
