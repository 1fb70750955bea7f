"""Bad-input fuzzing: every bad call raises a specific netabase error, and nothing is lost.

Hypothesis mixes good writes with wrong field types, oversized keys, huge values, unknown
models, malformed URLs, bytes corrupted under the runtime, dangling links and callers cancelled
before their write ran. After every step the store must hold exactly what a dict says.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import netabase
from netabase._portal import TrioPortal
from netabase.backends import Put, WriteBatch

from ..link_models import LINK_MODELS, Client, Purchase

MIN_CASES_PER_BACKEND = 3400  # three backends: over 10k cases per CI run
keys = st.text(alphabet="abcxyz\x00é", min_size=1, max_size=4)
wrong_values = st.one_of(
    st.integers(),
    st.none(),
    st.binary(max_size=4),
    st.floats(),
    st.lists(st.integers(), max_size=2),
)


@netabase.model(key="id")
@attrs.frozen
class Unregistered:
    id: int


def test_bad_input_never_corrupts_the_store(backend_url: str) -> None:
    portal = TrioPortal()
    portal.start()
    cases = [0]
    try:
        held = portal.enter(netabase.open(backend_url, models=LINK_MODELS, cache_size=8))
        try:
            run_state_machine_as_test(
                _machine(portal, held.value, cases),
                settings=settings(
                    max_examples=80,
                    stateful_step_count=60,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            held.close()
    finally:
        portal.stop()
    print(f"bad-input cases on {backend_url.split(':')[0]}: {cases[0]}")
    assert cases[0] >= MIN_CASES_PER_BACKEND


def _machine(
    portal: TrioPortal, db: netabase.Database, cases: list[int]
) -> type[RuleBasedStateMachine]:
    clients, purchases = db.store(Client), db.store(Purchase)
    info = netabase.info_of(Client)
    assert info is not None
    _corrupted: set[str] = set()

    def call(fn: Any, *args: Any) -> Any:
        async def go() -> Any:
            return await fn(*args)

        return portal.run(go)

    def refused(error: type[BaseException], fn: Any, *args: Any) -> BaseException:
        try:
            call(fn, *args)
        except error as exc:
            return exc
        raise AssertionError(f"{fn.__name__}{args!r} should have raised {error.__name__}")

    async def everything() -> dict[str, Client]:
        return {c.id: c async for c in clients.scan(skip_corrupt=True)}

    class BadInput(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            call(purchases.remove_many, [p.id for p in portal.run(_all, purchases)])
            stored = call(db.backend.scan, "Client")
            call(clients.remove_many, [info.decode_key(key) for key, _ in stored])
            _corrupted.clear()
            self.model: dict[str, Client] = {}

        def step(self) -> None:
            cases[0] += 1

        @rule(key=keys, name=st.text(max_size=8))
        def good_insert(self, key: str, name: str) -> None:
            self.step()
            call(clients.insert, Client(key, name))
            self.model[key] = Client(key, name)
            _corrupted.discard(key)

        @rule(key=keys, value=wrong_values)
        def wrong_field_type(self, key: str, value: object) -> None:
            self.step()
            error = refused(netabase.ValidationError, clients.insert, Client(key, value))  # type: ignore[arg-type]
            assert error.model == "Client" and error.field == "name"  # type: ignore[attr-defined]

        @rule(value=wrong_values)
        def wrong_key_type(self, value: object) -> None:
            self.step()
            error = refused(netabase.ValidationError, clients.get, value)
            assert error.model == "Client" and error.field == "id"  # type: ignore[attr-defined]

        @rule(size=st.integers(510, 3000))
        def oversized_key(self, size: int) -> None:
            self.step()
            error = refused(netabase.KeyTooLarge, clients.insert, Client("k" * size, ""))
            assert error.model == "Client" and error.key == "k" * size  # type: ignore[attr-defined]

        @rule(key=keys, size=st.sampled_from([100_000, 1_500_000]))
        def huge_value(self, key: str, size: int) -> None:
            self.step()
            record = Client(key, "n" * size)
            call(clients.insert, record)
            _corrupted.discard(key)
            if size < 1_000_000:
                self.model[key] = record
                return
            # Megabyte records round-trip, then go: every invariant check scans the whole store,
            # and a few of them left behind made each scan cost milliseconds on Redis.
            assert call(clients.get, key) == record
            assert call(clients.remove, key) is True
            self.model.pop(key, None)

        @rule()
        def unknown_model(self) -> None:
            self.step()
            try:
                db.store(Unregistered)
            except netabase.UnknownModel as exc:
                assert exc.model == "Unregistered"
            else:
                raise AssertionError("UnknownModel expected")

        @rule(
            url=st.sampled_from(
                [
                    "",
                    "nope",
                    "ftp://x",
                    "lmdb://",
                    "memory://?x=1",
                    "lmdb:///tmp/x?sync=maybe",
                    "redis://h:notaport/0",
                    "redis://:pw@h/zero",
                    "redis://h/0?pool=many",
                ]
            )
        )
        def malformed_url(self, url: str) -> None:
            self.step()

            async def attempt() -> None:
                async with netabase.open(url, models=LINK_MODELS):
                    pass

            refused(netabase.InvalidURL, attempt)

        @rule(key=keys, junk=st.binary(max_size=12))
        def corrupt_bytes(self, key: str, junk: bytes) -> None:
            self.step()
            encoded = info.encode_key(key)
            call(
                db.backend.apply,
                [WriteBatch((Put("Client", encoded, b"\x01\x01" + junk + b"\xc1"),))],
            )
            # Bypassing the actor is what another process would do; read it back through it.
            error = refused(netabase.CorruptRecord, clients.get, key)
            assert error.model == "Client" and error.key == key  # type: ignore[attr-defined]
            self.model.pop(key, None)
            _corrupted.add(key)

        @rule(key=keys)
        def cancelled_caller(self, key: str) -> None:
            self.step()

            async def cancelled() -> None:
                with trio.CancelScope() as scope:
                    scope.cancel()
                    await clients.insert(Client(key, "never"))

            call(cancelled)
            expected = self.model.get(key)
            if key not in _corrupted:
                assert call(clients.get, key) == expected

        @rule(pid=st.integers(0, 50), key=keys)
        def dangling_link(self, pid: int, key: str) -> None:
            self.step()
            if key in self.model or key in _corrupted:
                return  # a corrupt record still exists: linking to it is allowed
            error = refused(netabase.LinkViolation, purchases.insert, Purchase(pid, key))
            assert error.field == "client" and error.missing == (key,)  # type: ignore[attr-defined]

        @rule(key=keys)
        def remove(self, key: str) -> None:
            self.step()
            existed = key in self.model or key in _corrupted
            assert call(clients.remove, key) is existed
            self.model.pop(key, None)
            _corrupted.discard(key)

        @invariant()
        def matches(self) -> None:
            assert portal.run(everything) == self.model

    return BadInput


async def _all(store: netabase.Store[Any]) -> list[Any]:
    return [record async for record in store.scan()]
