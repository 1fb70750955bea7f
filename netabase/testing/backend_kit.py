"""The backend conformance kit: the contract of `netabase.backends.Backend` as pytest tests.

netabase runs it against memory://, lmdb:// and redis://; a backend author runs it against
theirs by subclassing and providing a ``backend_url`` fixture::

    from netabase.testing.backend_kit import BackendConformance

    class TestMyBackend(BackendConformance):
        durable = True            # data survives closing and reopening the same URL

        @pytest.fixture
        def backend_url(self, tmp_path):
            return f"myscheme://{tmp_path}"

The URL's scheme must be registered with `netabase.register_backend`. Every assertion says which
rule of the contract was broken.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar

import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from .._errors import KeyTooLarge, ValidationError
from .._keys import MAX_KEY_SIZE, component_range, prefix_successor
from .._portal import TrioPortal
from ..backends import (
    EXISTS,
    Backend,
    Delete,
    Expect,
    ExpectKeys,
    Put,
    WriteBatch,
    open_backend,
)

SPACES = ("a", "b")


# Key-value conveniences on the primitives, for tests that work one key at a time.


async def get(backend: Backend, space: str, key: bytes) -> bytes | None:
    _, values = await backend.read(space, (key,))
    return values[0]


async def get_many(backend: Backend, space: str, keys: Sequence[bytes]) -> list[bytes | None]:
    _, values = await backend.read(space, keys)
    return values


async def contains(backend: Backend, space: str, key: bytes) -> bool:
    return await get(backend, space, key) is not None


async def insert(backend: Backend, space: str, key: bytes, value: bytes) -> None:
    await backend.apply((WriteBatch((Put(space, key, value),)),))


async def insert_many(backend: Backend, space: str, items: Iterable[tuple[bytes, bytes]]) -> None:
    ops = tuple(Put(space, key, value) for key, value in items)
    if ops:
        await backend.apply((WriteBatch(ops),))


async def remove(backend: Backend, space: str, key: bytes) -> bytes | None:
    """Delete ``key`` and return the value it held (None if absent), atomically."""
    while True:
        old = await get(backend, space, key)
        if old is None:
            return None
        result = await backend.apply(
            (WriteBatch((Delete(space, key),), (Expect(space, key, old),)),)
        )
        if result.failed[0] is None:
            return old


async def remove_many(backend: Backend, space: str, keys: Iterable[bytes]) -> None:
    ops = tuple(Delete(space, key) for key in keys)
    if ops:
        await backend.apply((WriteBatch(ops),))


async def _started(url: str) -> Backend:
    backend = open_backend(url)
    await backend.start(SPACES)
    return backend


class BackendConformance:
    """Subclass as ``Test...`` and provide a ``backend_url`` fixture."""

    durable: ClassVar[bool] = True

    @pytest.fixture
    async def backend(self, backend_url: str) -> AsyncIterator[Backend]:
        backend = await _started(backend_url)
        try:
            yield backend
        finally:
            await backend.aclose()

    # -- single keys --------------------------------------------------------------------------

    @pytest.mark.trio
    async def test_get_missing_is_none(self, backend: Backend) -> None:
        assert await get(backend, "a", b"nope") is None, "get of a missing key must return None"
        assert await contains(backend, "a", b"nope") is False

    @pytest.mark.trio
    async def test_insert_then_get_roundtrips_any_bytes(self, backend: Backend) -> None:
        pairs = [(b"\x00", b""), (b"\xff\x00\xff", bytes(range(256))), (b"k", b"v")]
        for key, value in pairs:
            await insert(backend, "a", key, value)
        for key, value in pairs:
            got = await get(backend, "a", key)
            assert got == value, f"get({key!r}) returned {got!r}, expected {value!r}"
            assert await contains(backend, "a", key), f"contains({key!r}) must be True"

    @pytest.mark.trio
    async def test_insert_overwrites(self, backend: Backend) -> None:
        await insert(backend, "a", b"k", b"one")
        await insert(backend, "a", b"k", b"two")
        assert await get(backend, "a", b"k") == b"two", "a second insert must replace the value"
        assert await backend.count("a") == 1, "overwriting must not add a key"

    @pytest.mark.trio
    async def test_get_many_keeps_order_and_reports_missing(self, backend: Backend) -> None:
        await insert_many(backend, "a", [(b"1", b"x"), (b"3", b"z")])
        got = await get_many(backend, "a", [b"3", b"2", b"1", b"3"])
        assert got == [b"z", None, b"x", b"z"], (
            "get_many must return one value per requested key, in request order, None if missing"
        )

    @pytest.mark.trio
    async def test_remove_returns_old_value(self, backend: Backend) -> None:
        await insert(backend, "a", b"k", b"v")
        assert await remove(backend, "a", b"k") == b"v", "remove must return the removed value"
        assert await get(backend, "a", b"k") is None, "a removed key must be gone"
        assert await remove(backend, "a", b"k") is None, "removing a missing key returns None"

    @pytest.mark.trio
    async def test_insert_many_and_remove_many(self, backend: Backend) -> None:
        await insert_many(backend, "a", [(bytes([i]), bytes([i])) for i in range(50)])
        assert await backend.count("a") == 50, "count() must equal the number of keys inserted"
        await remove_many(backend, "a", [bytes([i]) for i in range(0, 50, 2)])
        left = [key for key, _ in await backend.scan("a")]
        assert left == [bytes([i]) for i in range(1, 50, 2)], "remove_many removed the wrong keys"

    @pytest.mark.trio
    async def test_spaces_are_isolated(self, backend: Backend) -> None:
        await insert(backend, "a", b"k", b"in a")
        assert await get(backend, "b", b"k") is None, "a key written in one space leaked to another"
        assert await backend.scan("b") == [], "scan of an untouched space must be empty"
        assert await backend.count("b") == 0, "count() of a space never written must be 0"

    @pytest.mark.trio
    async def test_key_size_limit(self, backend: Backend) -> None:
        await insert(backend, "a", b"k" * MAX_KEY_SIZE, b"v")
        assert await get(backend, "a", b"k" * MAX_KEY_SIZE) == b"v", "511-byte keys must work"
        with pytest.raises(KeyTooLarge):
            await insert(backend, "a", b"k" * (MAX_KEY_SIZE + 1), b"v")
        with pytest.raises(ValidationError):
            await insert(backend, "a", b"", b"v")

    @pytest.mark.trio
    async def test_large_values(self, backend: Backend) -> None:
        big = random.Random(1).randbytes(3 << 20)
        await insert(backend, "a", b"big", big)
        assert await get(backend, "a", b"big") == big, "a 3 MiB value must round-trip unchanged"

    # -- ordered scans -----------------------------------------------------------------------

    @pytest.mark.trio
    async def test_scan_is_in_bytewise_key_order(self, backend: Backend) -> None:
        rng = random.Random(7)
        keys = sorted({rng.randbytes(rng.randint(1, 6)) for _ in range(300)})
        shuffled = keys[:]
        rng.shuffle(shuffled)
        await insert_many(backend, "a", [(key, key[::-1]) for key in shuffled])
        got = await backend.scan("a")
        assert [key for key, _ in got] == keys, "scan must return every key in bytewise order"
        assert all(value == key[::-1] for key, value in got), "scan paired a key with a wrong value"
        backwards = await backend.scan("a", reverse=True)
        assert [key for key, _ in backwards] == keys[::-1], "scan(reverse=True) must descend"

    @pytest.mark.trio
    async def test_scan_bounds_and_limit(self, backend: Backend) -> None:
        keys = [bytes([i]) for i in range(0, 100, 5)]
        await insert_many(backend, "a", [(key, b"") for key in keys])

        def expect(lo: bytes, hi: bytes | None) -> list[bytes]:
            return [k for k in keys if k >= lo and (hi is None or k < hi)]

        for lo, hi in [(b"", None), (b"\x05", b"\x14"), (b"\x06", b"\x13"), (b"\x63", None)]:
            got = [key for key, _ in await backend.scan("a", lo, hi)]
            assert got == expect(lo, hi), f"scan(lo={lo!r}, hi={hi!r}): lo is inclusive, hi not"
            rev = [key for key, _ in await backend.scan("a", lo, hi, reverse=True)]
            assert rev == expect(lo, hi)[::-1], f"reverse scan(lo={lo!r}, hi={hi!r}) is wrong"
            for limit in (0, 1, 3):
                fwd = [key for key, _ in await backend.scan("a", lo, hi, limit=limit)]
                assert fwd == expect(lo, hi)[:limit], f"limit={limit} must keep the first keys"
                back = await backend.scan("a", lo, hi, limit=limit, reverse=True)
                assert [key for key, _ in back] == expect(lo, hi)[::-1][:limit], (
                    f"limit={limit} with reverse must keep the last keys, largest first"
                )

    @pytest.mark.trio
    async def test_scan_by_prefix(self, backend: Backend) -> None:
        keys = [b"ab", b"ab\x00", b"ab\xff", b"abc", b"ac", b"a", b"b"]
        await insert_many(backend, "a", [(key, b"") for key in keys])
        got = [key for key, _ in await backend.scan("a", b"ab", prefix_successor(b"ab"))]
        assert got == sorted(k for k in keys if k.startswith(b"ab")), "prefix scan is wrong"

    # -- atomic conditional batches ----------------------------------------------------------

    @pytest.mark.trio
    async def test_batch_is_all_or_nothing(self, backend: Backend) -> None:
        await insert(backend, "a", b"gate", b"closed")
        batch = WriteBatch(
            (Put("a", b"x", b"1"), Put("b", b"y", b"2"), Delete("a", b"gate")),
            (Expect("a", b"gate", b"open"),),
        )
        result = await backend.apply([batch])
        assert result.failed == (0,), "a batch whose condition fails must report its index"
        assert await get(backend, "a", b"x") is None, "a refused batch must write nothing"
        assert await get(backend, "b", b"y") is None, "a refused batch must write no other space"
        assert await get(backend, "a", b"gate") == b"closed", "a refused batch must delete nothing"
        assert result.versions == {}, "a call that changed nothing must advance no version"

    @pytest.mark.trio
    async def test_batches_in_one_call_are_independent(self, backend: Backend) -> None:
        ok = WriteBatch((Put("a", b"ok", b"1"),))
        refused = WriteBatch((Put("a", b"no", b"1"),), (Expect("a", b"missing", EXISTS),))
        ok_too = WriteBatch((Put("b", b"ok", b"2"),))
        result = await backend.apply([ok, refused, ok_too])
        assert result.failed == (None, 0, None), "each batch succeeds or fails on its own"
        assert await get(backend, "a", b"ok") == b"1"
        assert await get(backend, "a", b"no") is None
        assert await get(backend, "b", b"ok") == b"2"

    @pytest.mark.trio
    async def test_expect_value_forms(self, backend: Backend) -> None:
        await insert(backend, "a", b"k", b"v")
        cases = [
            (Expect("a", b"k", b"v"), True),
            (Expect("a", b"k", b"w"), False),
            (Expect("a", b"k", EXISTS), True),
            (Expect("a", b"k", None), False),
            (Expect("a", b"other", None), True),
            (Expect("a", b"other", EXISTS), False),
            (Expect("b", b"k", None), True),
        ]
        for condition, holds in cases:
            result = await backend.apply([WriteBatch((Put("b", b"probe", b""),), (condition,))])
            assert (result.failed[0] is None) is holds, f"{condition} should hold={holds}"

    @pytest.mark.trio
    async def test_expect_keys(self, backend: Backend) -> None:
        await insert_many(backend, "a", [(b"p1", b""), (b"p2", b""), (b"q", b"")])
        exact = ExpectKeys("a", b"p", frozenset({b"p1", b"p2"}))
        short = ExpectKeys("a", b"p", frozenset({b"p1"}))
        empty = ExpectKeys("a", b"z", frozenset())
        result = await backend.apply(
            [WriteBatch((Put("b", b"1", b""),), (c,)) for c in (exact, short, empty)]
        )
        assert result.failed == (None, 0, None), "ExpectKeys must compare the exact key set"

    @pytest.mark.trio
    async def test_expect_keys_with_an_upper_bound(self, backend: Backend) -> None:
        # A name's keys, not those of a longer name that starts with the same bytes.
        await insert_many(backend, "a", [(b"n\x00g", b""), (b"n\x00\xffx\x00g", b"")])
        lo, hi = component_range(b"n\x00")
        whole = ExpectKeys("a", lo, frozenset({b"n\x00g"}), hi)
        wider = ExpectKeys("a", lo, frozenset({b"n\x00g"}))
        result = await backend.apply(
            [WriteBatch((Put("b", b"1", b""),), (c,)) for c in (whole, wider)]
        )
        assert result.failed == (None, 0), (
            "ExpectKeys must compare only the keys in [prefix, upper)"
        )

    @pytest.mark.trio
    async def test_conditions_see_earlier_batches_of_the_same_call(self, backend: Backend) -> None:
        first = WriteBatch((Put("a", b"k", b"1"),), (Expect("a", b"k", None),))
        second = WriteBatch((Put("a", b"k", b"2"),), (Expect("a", b"k", None),))
        third = WriteBatch((Put("a", b"k", b"3"),), (Expect("a", b"k", b"1"),))
        result = await backend.apply([first, second, third])
        assert result.failed == (None, 0, None), "batches apply in order, each seeing the last"
        assert await get(backend, "a", b"k") == b"3"

    @pytest.mark.trio
    async def test_versions_advance_once_per_call(self, backend: Backend) -> None:
        start_a, start_b = await backend.version("a"), await backend.version("b")
        result = await backend.apply(
            [WriteBatch((Put("a", b"1", b""),)), WriteBatch((Put("a", b"2", b""),))]
        )
        assert set(result.versions) == {"a"}, "apply must report each space it changed, once"
        before, after = result.versions["a"]
        assert before == start_a and after > before, (
            "apply must report (version before the call, a greater version after it)"
        )
        assert await backend.version("a") == after, "version() must return what apply reported"
        assert await backend.version("b") == start_b, "an untouched space keeps its version"
        version, _ = await backend.read("a", [b"1"])
        assert version == after, "read must report the space's current version"
        again = await backend.apply([WriteBatch((Put("a", b"3", b""),))])
        assert again.versions.keys() == {"a"}, "apply must report each space it changed, once"
        before, later = again.versions["a"]
        assert before == after and later > after, (
            "a later call advances it again, from the version the last call left"
        )

    @pytest.mark.trio
    async def test_concurrent_conditional_updates_lose_nothing(self, backend: Backend) -> None:
        await insert(backend, "a", b"n", b"0")

        async def increment() -> None:
            # 40 writers, so at most 39 others can win before this one; a few times that
            # many refusals means apply refuses batches whose condition holds.
            for _ in range(400):
                old = await get(backend, "a", b"n")
                assert old is not None, "a key inserted before the race must still be there"
                new = str(int(old) + 1).encode()
                batch = WriteBatch((Put("a", b"n", new),), (Expect("a", b"n", old),))
                if (await backend.apply([batch])).failed[0] is None:
                    return
                if await get(backend, "a", b"n") == old:
                    raise AssertionError(
                        "apply refused a batch whose condition held (the value was unchanged): "
                        "check Expect against the stored value, inside the write"
                    )
            raise AssertionError("a conditional write was refused 400 times in a row")

        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(increment)
        assert await get(backend, "a", b"n") == b"40", "a conditional write let an update be lost"

    # -- durability ----------------------------------------------------------------------------

    # -- snapshots (transactions read from them) ---------------------------------------------

    @pytest.mark.trio
    async def test_a_snapshot_reads_one_point_in_time(self, backend: Backend) -> None:
        await insert_many(backend, "a", [(b"k1", b"1"), (b"k2", b"2"), (b"k4", b"4")])
        snapshot = await backend.snapshot()
        try:
            await backend.apply(
                (WriteBatch((Put("a", b"k1", b"new"), Delete("a", b"k2"), Put("a", b"k3", b"3"))),)
            )
            values = await snapshot.read("a", [b"k1", b"k2", b"k3"])
            pairs = await snapshot.scan("a")
            backwards = await snapshot.scan("a", b"k1", b"k4", reverse=True, limit=2)
            if snapshot.isolated:
                assert values == [b"1", b"2", None], "a snapshot must not see later writes"
                assert pairs == [(b"k1", b"1"), (b"k2", b"2"), (b"k4", b"4")], (
                    "a snapshot's scan must not see later writes, deletes included"
                )
                assert backwards == [(b"k2", b"2"), (b"k1", b"1")]
            else:
                assert values == [b"new", None, b"3"], "a live snapshot reads the current state"
                assert [k for k, _ in pairs] == [b"k1", b"k3", b"k4"]
        finally:
            snapshot.close()
        snapshot.close()  # idempotent

    @pytest.mark.trio
    async def test_a_fresh_snapshot_sees_every_applied_write(self, backend: Backend) -> None:
        await insert(backend, "b", b"x", b"1")
        first = await backend.snapshot()
        await insert(backend, "b", b"x", b"2")
        second = await backend.snapshot()
        try:
            assert await second.read("b", [b"x"]) == [b"2"]
            assert await second.scan("b") == [(b"x", b"2")]
        finally:
            first.close()
            second.close()

    @pytest.mark.trio
    async def test_reopen_keeps_data(self, backend_url: str) -> None:
        if not self.durable:
            return
        first = await _started(backend_url)
        try:
            await insert(first, "a", b"kept", b"yes")
        finally:
            await first.aclose()
        second = await _started(backend_url)
        try:
            assert await get(second, "a", b"kept") == b"yes", "data must survive close and reopen"
        finally:
            await second.aclose()

    @pytest.mark.trio
    async def test_a_space_not_given_to_start_works(self, backend_url: str) -> None:
        """`start` names the spaces known up front; any other space must simply work, and
        (durable backends) still hold its data after a reopen that does not name it either."""
        first = await _started(backend_url)
        try:
            await insert(first, "late", b"k1", b"v1")
            await insert_many(first, "late", [(b"k2", b"v2"), (b"k3", b"v3")])
            assert await get(first, "late", b"k1") == b"v1", "a space not given to start lost data"
            assert await first.count("late") == 3
            version = await first.version("late")
            assert version > 0, "writing a space not given to start must advance its version"
        finally:
            await first.aclose()
        if not self.durable:
            return
        second = await _started(backend_url)
        try:
            assert await second.version("late") == version, "a reopen changed the version"
            _, values = await second.read("late", [b"k1", b"k2", b"nope"])
            assert values == [b"v1", b"v2", None], (
                "after a reopen, a space written but not given to start must read back its data"
            )
            assert await second.scan("late") == [(b"k1", b"v1"), (b"k2", b"v2"), (b"k3", b"v3")]
            assert await second.count("late") == 3
            result = await second.apply(
                [WriteBatch((Put("a", b"seen", b""),), (Expect("late", b"k3", b"v3"),))]
            )
            assert result.failed == (None,), "a condition on such a space must see its data"
            await insert(second, "late", b"k4", b"v4")
            assert await get(second, "late", b"k4") == b"v4"
        finally:
            await second.aclose()

    # -- model-based ---------------------------------------------------------------------------

    def test_matches_a_dict_reference(self, backend_url: str) -> None:
        """A hypothesis state machine drives the backend and a dict side by side."""
        portal = TrioPortal()
        portal.start()
        try:
            backend = portal.run(_started, backend_url)
            try:
                machine = _reference_machine(portal, backend)
                run_state_machine_as_test(
                    machine,
                    settings=settings(
                        max_examples=25,
                        stateful_step_count=30,
                        deadline=None,
                        suppress_health_check=list(HealthCheck),
                    ),
                )
            finally:
                portal.run(backend.aclose)
        finally:
            portal.stop()


_keys = st.binary(min_size=1, max_size=4)
_values = st.binary(max_size=16)


def _reference_machine(portal: TrioPortal, backend: Backend) -> type[RuleBasedStateMachine]:
    spaces = iter(range(1_000_000))

    class BackendMatchesDict(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.space = f"sm{next(spaces)}"
            self.model: dict[bytes, bytes] = {}

        def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
            async def go() -> Any:
                return await fn(*args, **kwargs)

            return portal.run(go)

        @rule(key=_keys, value=_values)
        def insert(self, key: bytes, value: bytes) -> None:
            self.call(insert, backend, self.space, key, value)
            self.model[key] = value

        @rule(key=_keys)
        def remove(self, key: bytes) -> None:
            got = self.call(remove, backend, self.space, key)
            assert got == self.model.pop(key, None), "remove returned the wrong old value"

        @rule(key=_keys, expected=st.one_of(st.none(), _values), value=_values)
        def conditional_put(self, key: bytes, expected: bytes | None, value: bytes) -> None:
            batch = WriteBatch((Put(self.space, key, value),), (Expect(self.space, key, expected),))
            result = self.call(backend.apply, [batch])
            holds = self.model.get(key) == expected
            assert (result.failed[0] is None) is holds, "condition judged wrongly"
            if holds:
                self.model[key] = value

        @rule(keys=st.lists(_keys, max_size=5))
        def get_many(self, keys: list[bytes]) -> None:
            got = self.call(get_many, backend, self.space, keys)
            assert got == [self.model.get(key) for key in keys], (
                "get_many must answer in the order asked, None for absent keys"
            )

        @rule(
            lo=_keys,
            hi=st.one_of(st.none(), _keys),
            limit=st.none() | st.integers(0, 5),
            reverse=st.booleans(),
        )
        def scan(self, lo: bytes, hi: bytes | None, limit: int | None, reverse: bool) -> None:
            got = self.call(backend.scan, self.space, lo, hi, limit=limit, reverse=reverse)
            expected = sorted(
                (k, v) for k, v in self.model.items() if k >= lo and (hi is None or k < hi)
            )
            if reverse:
                expected.reverse()
            if limit is not None:
                expected = expected[:limit]
            assert got == expected, "scan disagrees with the reference"

        @invariant()
        def count_matches(self) -> None:
            assert self.call(backend.count, self.space) == len(self.model), (
                "count() disagrees with the keys written and removed"
            )

    return BackendMatchesDict
