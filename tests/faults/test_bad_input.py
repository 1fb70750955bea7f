"""Bad-input fuzzing: every bad call raises a specific netabase error, and nothing is lost.

Hypothesis mixes good writes with wrong field types, oversized keys, huge values, unknown
models, malformed URLs, bytes corrupted under the runtime, dangling links, callers cancelled
before their write ran, and junk (bools, floats, NaN, inf, huge and negative ints, wrong types,
None) for every other public parameter: scan's, with_options', get(load=), the collections of
the *_many methods, referrers', list_objects' page_size, a guarded scan's limit, every option
of open and the LMDB URL options. A junk argument must raise `ValidationError` (or the error its
documentation names), a valid one must give the documented result; after every step the store
must hold exactly what a dict says, and at the end no actor has ever crashed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import netabase
from netabase._portal import TrioPortal
from netabase.actors._calls import send
from netabase.actors._messages import ListObjects, Scan
from netabase.backends import Put, WriteBatch, open_backend

from ..link_models import LINK_MODELS, Client, Line, Purchase

MIN_CASES_PER_BACKEND = 3400  # three backends: over 10k cases per CI run
keys = st.text(alphabet="abcxyz\x00é", min_size=1, max_size=4)
wrong_values = st.one_of(
    st.integers(),
    st.none(),
    st.binary(max_size=4),
    st.floats(),
    st.lists(st.integers(), max_size=2),
)
junk = st.one_of(
    st.booleans(),
    st.none(),
    st.floats(),  # NaN and infinities included
    st.integers(-3, 3),
    st.sampled_from([2**20, 2**20 + 1, 2**63 - 1, 2**63, 10**30, -(10**30), 10**300]),
    st.text(alphabet="abcxyz\x00é", max_size=3),
    st.binary(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
    st.tuples(st.text(alphabet="abc", max_size=1)),
)
MAX_COUNT = 2**63 - 1
MAX_PAGE = 2**20
OPEN_COUNTS = {"cache_size": 0, "mailbox_size": 1, "max_batch": 1, "max_restarts": 0}
OPEN_OPTIONS = [*OPEN_COUNTS, "request_timeout", "restart_period", "strategy", "roles", "models"]
LMDB_RANGES = {"map_size": (2**16, 2**63 - 1), "max_dbs": (8, 32767), "max_readers": (1, 2**20)}


def _count(value: object, low: int, high: int = MAX_COUNT) -> bool:
    """The reference: a plain int (not a bool) within the bounds."""
    return type(value) is int and low <= value <= high


def _seconds(value: object) -> bool:
    return type(value) in (int, float) and 0 < value <= 1e9  # type: ignore[operator]


@netabase.model(key="id")
@attrs.frozen
class Unregistered:
    id: int


@pytest.mark.slow_on("lmdb", "redis")
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
            restarts = {name: s.restarts for name, s in held.value.stats().actors.items()}
            assert not any(restarts.values()), f"an argument crashed an actor: {restarts}"
        finally:
            held.close()
    finally:
        portal.stop()
    print(f"bad-input cases on {backend_url.split(':')[0]}: {cases[0]}")
    assert cases[0] >= MIN_CASES_PER_BACKEND


def _machine(
    portal: TrioPortal, db: netabase.Database, cases: list[int]
) -> type[RuleBasedStateMachine]:
    clients, purchases, lines = db.store(Client), db.store(Purchase), db.store(Line)
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

    def bad_argument(fn: Any, *args: Any, model: str = "Client", field: str | None) -> None:
        error = refused(netabase.ValidationError, fn, *args)
        assert error.model == model, error  # type: ignore[attr-defined]
        assert error.field == field, error  # type: ignore[attr-defined]

    async def listing(store: Any = None, **options: Any) -> list[Any]:
        return [record async for record in (store or clients).scan(**options)]

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

        @rule(value=st.one_of(junk, st.just([Client]), st.just({})))
        def store_of_junk(self, value: object) -> None:
            self.step()
            with pytest.raises(netabase.UnknownModel):
                db.store(value)  # type: ignore[arg-type]

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
                    f"lmdb:///tmp/x?map_size={2**70}",
                    f"lmdb:///tmp/x?max_dbs={10**30}",
                    "lmdb:///tmp/x\x00y",
                    "lmdb:///tmp/x%00y",
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

        def visible(self, start: Any = None, stop: Any = None, prefix: Any = None) -> list[Client]:
            return [
                self.model[key]
                for key in sorted(self.model)
                if (start is None or key >= start)
                and (stop is None or key < stop)
                and (prefix is None or key.startswith(prefix))
            ]

        @rule(
            name=st.sampled_from(
                ["start", "stop", "prefix", "limit", "page_size", "reverse", "skip_corrupt"]
            ),
            value=junk,
        )
        def scan_argument(self, name: str, value: object) -> None:
            self.step()
            options: dict[str, Any] = {"skip_corrupt": True, name: value}
            if name in ("start", "stop", "prefix"):
                valid, field = value is None or isinstance(value, str), "id"
            elif name == "limit":
                valid, field = value is None or _count(value, 0), name
            elif name == "page_size":
                valid, field = _count(value, 1, MAX_PAGE), name
            else:
                valid, field = isinstance(value, bool), name
            if not valid:
                bad_argument(lambda: listing(**options), field=field)
                return
            if name == "skip_corrupt" and value is False and _corrupted:
                refused(netabase.CorruptRecord, lambda: listing(**options))
                return
            expected = self.visible(**{name: value} if field == "id" else {})
            if name == "reverse" and value:
                expected.reverse()
            if name == "limit" and value is not None:
                expected = expected[: int(value)]  # type: ignore[call-overload]
            assert call(lambda: listing(**options)) == expected

        @rule(name=st.sampled_from(["timeout", "block"]), key=keys, value=junk)
        def with_options_argument(self, name: str, key: str, value: object) -> None:
            self.step()
            # None keeps the store's own setting.
            valid = value is None or (
                _seconds(value) if name == "timeout" else isinstance(value, bool)
            )
            if not valid:
                with pytest.raises(netabase.ValidationError) as info:
                    clients.with_options(**{name: value})
                assert (info.value.model, info.value.field) == ("Client", name)
                return
            view = clients.with_options(**{name: value})
            if key in _corrupted:
                return
            try:
                assert call(view.get, key) == self.model.get(key)
            except netabase.RequestTimeout:
                assert name == "timeout" and value is not None and value < 1  # type: ignore[operator]

        @rule(key=keys, value=junk)
        def get_load_argument(self, key: str, value: object) -> None:
            self.step()
            if key in _corrupted:
                return
            # Client has no link fields: only None and an empty list are valid.
            if value is not None and not (type(value) in (list, tuple) and not value):  # type: ignore[arg-type]
                refused(netabase.ValidationError, lambda: clients.get(key, load=value))
                return
            got = call(lambda: clients.get(key, load=value))
            record = self.model.get(key)
            if value is None or record is None:
                assert got == record
            else:
                assert got.record == record and got.links == {}

        @rule(method=st.sampled_from(["get_many", "remove_many", "insert_many"]), value=junk)
        def collection_argument(self, method: str, value: object) -> None:
            self.step()
            fn = getattr(clients, method)
            items = list(value) if type(value) in (list, tuple) else None  # type: ignore[call-overload]
            fits = items is not None and all(
                isinstance(item, str) if method != "insert_many" else isinstance(item, Client)
                for item in items
            )
            if not fits:
                error = refused(netabase.ValidationError, fn, value)
                assert error.model == "Client", error  # type: ignore[attr-defined]
                return
            assert items is not None
            if any(item in _corrupted for item in items):
                return
            got = call(fn, value)
            if method == "get_many":
                assert got == [self.model.get(key) for key in items]
            elif method == "remove_many":
                assert got == len({key for key in items if key in self.model})
                for key in items:
                    self.model.pop(key, None)
            else:
                assert got == [] and not items  # insert_many returns the records it stored

        @rule(key=keys, name=st.sampled_from(["model", "field"]), value=junk)
        def referrers_argument(self, key: str, name: str, value: object) -> None:
            self.step()
            if value is None:
                assert call(lambda: clients.referrers(key, **{name: value})) == []
            elif name == "model":
                refused(netabase.UnknownModel, lambda: clients.referrers(key, model=value))
            else:
                error = refused(
                    netabase.ValidationError, lambda: clients.referrers(key, field=value)
                )
                assert error.model == "Client", error  # type: ignore[attr-defined]

        @rule(prefix=st.lists(junk, max_size=3).map(tuple))
        def tuple_key_prefix(self, prefix: tuple[Any, ...]) -> None:
            self.step()
            # Line keys are tuple[int, int]: a prefix is up to two ints msgpack can store.
            fits = len(prefix) <= 2 and all(_count(item, -(2**63), 2**64 - 1) for item in prefix)
            if fits:
                assert call(lambda: listing(lines, prefix=prefix)) == []
            else:
                bad_argument(lambda: listing(lines, prefix=prefix), model="Line", field="id")

        @rule(value=junk)
        def list_objects_page_size(self, value: object) -> None:
            self.step()

            async def listed() -> list[Any]:
                pages = db.permissions.list_objects("nobody", "read", Client, page_size=value)  # type: ignore[arg-type]
                return [key async for key in pages]

            if _count(value, 1, MAX_PAGE):
                assert call(listed) == []
            else:
                bad_argument(listed, model="permissions", field="page_size")

        @rule(value=junk)
        def guarded_scan_limit(self, value: object) -> None:
            self.step()
            guarded = db.as_principal("nobody").store(Client)
            if value is None or _count(value, 0):
                assert call(lambda: listing(guarded, limit=value, skip_corrupt=True)) == []
            else:
                bad_argument(
                    lambda: listing(guarded, limit=value, skip_corrupt=True), field="limit"
                )

        @rule(name=st.sampled_from(OPEN_OPTIONS), value=junk)
        def open_option(self, name: str, value: object) -> None:
            self.step()
            options: dict[str, Any] = {"models": LINK_MODELS, name: value}

            async def attempt() -> None:
                async with netabase.open("memory://", **options):
                    pass

            if name in OPEN_COUNTS:
                valid = _count(value, OPEN_COUNTS[name])
            elif name in ("request_timeout", "restart_period"):
                valid = _seconds(value)
            elif name == "models" and type(value) in (list, tuple):
                if value:  # elements that are no model classes
                    refused(netabase.ModelDefinitionError, attempt)
                    return
                valid = True
            else:  # strategy (junk never names one), roles (None or a mapping), models
                valid = name == "roles" and value is None
            if valid:
                call(attempt)
            else:
                bad_argument(attempt, model="open", field=name)

        @rule(name=st.sampled_from(sorted(LMDB_RANGES)), value=junk)
        def lmdb_url_option(self, name: str, value: object) -> None:
            self.step()
            text = str(value)
            url = f"lmdb:///tmp/netabase-never-opened?{name}={text}"
            low, high = LMDB_RANGES[name]
            if type(value) is int and low <= value <= high:
                backend = open_backend(url)  # parsed, not started
                assert backend.url == url
                return
            with pytest.raises(netabase.InvalidURL, match=name):
                open_backend(url)

        @invariant()
        def matches(self) -> None:
            assert portal.run(everything) == self.model

    return BadInput


async def _all(store: netabase.Store[Any]) -> list[Any]:
    return [record async for record in store.scan()]


def test_adapters_refuse_bad_arguments_before_crossing() -> None:
    """The sync adapter checks arguments in the calling thread, like `Store` does."""
    with (
        pytest.raises(netabase.ValidationError, match="models"),
        netabase.connect_sync("memory://", models=5),  # type: ignore[arg-type]
    ):
        pass
    with netabase.connect_sync("memory://", models=LINK_MODELS) as db:
        clients = db.store(Client)
        clients.insert(Client("a", "x"))
        for options in ({"page_size": 1.5}, {"limit": True}, {"reverse": "no"}):
            with pytest.raises(netabase.ValidationError, match="Client"):
                clients.scan(**options)  # raised here, not when iterating
        with pytest.raises(netabase.ValidationError, match="page_size"):
            db.permissions.list_objects("ann", "read", Client, page_size=0)
        for bad in (5, None, "ab"):
            with pytest.raises(netabase.ValidationError, match="keys"):
                clients.get_many(bad)  # type: ignore[arg-type]
        with pytest.raises(netabase.ValidationError, match="queries"):
            db.permissions.check_many(7)  # type: ignore[arg-type]
        assert list(clients.scan()) == [Client("a", "x")]


async def _asyncio_adapter() -> None:
    with pytest.raises(netabase.ValidationError, match="models"):
        async with netabase.open_asyncio("memory://", models=None):  # type: ignore[arg-type]
            pass
    with pytest.raises(netabase.ValidationError, match="bridge"):
        async with netabase.open_asyncio("memory://", models=LINK_MODELS, bridge="fibre"):  # type: ignore[arg-type]
            pass
    async with netabase.open_asyncio("memory://", models=LINK_MODELS, max_batch=4) as db:
        clients = db.store(Client)
        await clients.insert(Client("a", "x"))
        with pytest.raises(netabase.ValidationError, match="limit"):
            clients.scan(limit=-1)
        with pytest.raises(netabase.ValidationError, match="records"):
            await clients.insert_many(3)  # type: ignore[arg-type]
        assert [c async for c in clients.scan()] == [Client("a", "x")]
    with pytest.raises(netabase.ValidationError, match="max_batch"):
        async with netabase.open_asyncio("memory://", models=LINK_MODELS, max_batch=1.5):
            pass


def test_asyncio_adapter_refuses_bad_arguments() -> None:
    asyncio.run(_asyncio_adapter())


async def test_a_request_that_raises_fails_alone() -> None:
    """Past the caller's checks, whatever one request raises in an actor fails that request."""
    async with netabase.open("memory://", models=LINK_MODELS) as db:
        runtime = db._runtime
        await db.store(Client).insert(Client("a", "x"))
        actor, permissions = runtime.actor_for(Client), runtime.permission_actor
        for mailbox, message in [
            (actor.mailbox, Scan(b"", None, 1.5, False)),  # type: ignore[arg-type]  # islice refuses a float
            (permissions.mailbox, ListObjects("ann", "read", "Client", None, 1.5)),  # type: ignore[arg-type]
        ]:
            with pytest.raises((TypeError, ValueError)):
                await send(mailbox, message, deadlines=runtime.deadlines, seconds=5.0)
        assert await db.store(Client).get("a") == Client("a", "x")
        assert [k async for k in db.permissions.list_objects("ann", "read", Client)] == []
        assert all(stats.restarts == 0 for stats in db.stats().actors.values())
