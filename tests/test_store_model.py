"""A hypothesis state machine drives a Store and a dict side by side, on every backend."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import netabase
from netabase._portal import TrioPortal

from .models import Customer, Order

keys = st.text(alphabet="abcd\x00é", min_size=1, max_size=3)
names = st.text(max_size=4)


def test_store_matches_a_dict(backend_url: str) -> None:
    portal = TrioPortal()
    portal.start()
    try:
        held = portal.enter(netabase.open(backend_url, models=[Customer, Order], cache_size=8))
        try:
            run_state_machine_as_test(
                _machine(portal, held.value),
                settings=settings(
                    max_examples=30,
                    stateful_step_count=25,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            held.close()
    finally:
        portal.stop()


def _machine(portal: TrioPortal, db: netabase.Database) -> type[RuleBasedStateMachine]:
    store = db.store(Customer)

    class StoreMatchesDict(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            portal.run(store.remove_many, [c.id for c in portal.run(_all, store)])
            self.model: dict[str, Customer] = {}

        @rule(key=keys, name=names)
        def insert(self, key: str, name: str) -> None:
            portal.run(store.insert, Customer(key, name))
            self.model[key] = Customer(key, name)

        @rule(items=st.dictionaries(keys, names, max_size=4))
        def insert_many(self, items: dict[str, str]) -> None:
            records = [Customer(k, v) for k, v in items.items()]
            portal.run(store.insert_many, records)
            self.model.update({r.id: r for r in records})

        @rule(key=keys)
        def remove(self, key: str) -> None:
            assert portal.run(store.remove, key) is (self.model.pop(key, None) is not None)

        @rule(key_list=st.lists(keys, max_size=4))
        def remove_many(self, key_list: list[str]) -> None:
            expected = len({k for k in key_list if k in self.model})
            assert portal.run(store.remove_many, key_list) == expected
            for key in key_list:
                self.model.pop(key, None)

        @rule(key_list=st.lists(keys, max_size=5))
        def get_many(self, key_list: list[str]) -> None:
            assert portal.run(store.get_many, key_list) == [self.model.get(k) for k in key_list]

        @rule(
            start=st.none() | keys,
            prefix=st.none() | keys,
            reverse=st.booleans(),
            limit=st.none() | st.integers(0, 4),
        )
        def scan(
            self, start: str | None, prefix: str | None, reverse: bool, limit: int | None
        ) -> None:
            async def collect() -> list[Customer]:
                it = store.scan(
                    start=start, prefix=prefix, reverse=reverse, limit=limit, page_size=2
                )
                return [c async for c in it]

            expected = sorted(
                (
                    c
                    for k, c in self.model.items()
                    if (start is None or k >= start) and (prefix is None or k.startswith(prefix))
                ),
                key=lambda c: c.id,
                reverse=reverse,
            )
            assert portal.run(collect) == expected[:limit]

        @invariant()
        def everything_matches(self) -> None:
            assert portal.run(_all, store) == sorted(self.model.values(), key=lambda c: c.id)

    return StoreMatchesDict


async def _all(store: netabase.Store[Customer]) -> list[Customer]:
    return [c async for c in store.scan()]
