"""A hypothesis state machine of linked stores against a plain-Python reference, every backend."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import netabase
from netabase._portal import TrioPortal
from netabase.testing import check_integrity

from .link_models import LINK_MODELS, Client, Line, Product, Purchase

clients = st.sampled_from(["c1", "c2", "c3"])
products = st.sampled_from(["p1", "p2", "p3"])
purchase_ids = st.integers(1, 4)


def test_linked_stores_match_a_reference(backend_url: str) -> None:
    portal = TrioPortal()
    portal.start()
    try:
        held = portal.enter(netabase.open(backend_url, models=LINK_MODELS, cache_size=16))
        try:
            run_state_machine_as_test(
                _machine(portal, held.value),
                settings=settings(
                    max_examples=25,
                    stateful_step_count=30,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            held.close()
    finally:
        portal.stop()


def _machine(portal: TrioPortal, db: netabase.Database) -> type[RuleBasedStateMachine]:
    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def go() -> Any:
            return await fn(*args, **kwargs)

        return portal.run(go)

    def violates(fn: Any, *args: Any) -> bool:
        try:
            call(fn, *args)
        except netabase.LinkViolation:
            return True
        return False

    async def everything(model: type) -> list[Any]:
        return [record async for record in db.store(model).scan()]

    class Linked(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            for model in (Line, Purchase, Client, Product):
                info = netabase.info_of(model)
                assert info is not None
                call(db.store(model).remove_many, [info.key_of(r) for r in call(everything, model)])
            self.clients: set[str] = set()
            self.products: set[str] = set()
            self.purchases: dict[int, Purchase] = {}
            self.lines: dict[tuple[int, int], Line] = {}

        @rule(key=clients)
        def add_client(self, key: str) -> None:
            call(db.store(Client).insert, Client(key))
            self.clients.add(key)

        @rule(key=products)
        def add_product(self, key: str) -> None:
            call(db.store(Product).insert, Product(key))
            self.products.add(key)

        @rule(pid=purchase_ids, client=clients, skus=st.frozensets(products, max_size=2))
        def add_purchase(self, pid: int, client: str, skus: frozenset[str]) -> None:
            ok = client in self.clients and skus <= self.products
            assert violates(db.store(Purchase).insert, Purchase(pid, client, skus)) is not ok
            if ok:
                self.purchases[pid] = Purchase(pid, client, skus)

        @rule(pid=purchase_ids, n=st.integers(0, 1), sku=st.none() | products)
        def add_line(self, pid: int, n: int, sku: str | None) -> None:
            ok = pid in self.purchases and (sku is None or sku in self.products)
            line = Line((pid, n), pid, sku)
            assert violates(db.store(Line).insert, line) is not ok
            if ok:
                self.lines[line.id] = line

        @rule(key=clients)
        def remove_client(self, key: str) -> None:
            restricted = any(p.client == key for p in self.purchases.values())
            assert violates(db.store(Client).remove, key) is restricted
            if not restricted:
                self.clients.discard(key)

        @rule(key=products)
        def remove_product(self, key: str) -> None:
            call(db.store(Product).remove, key)
            self.products.discard(key)
            for pid, p in list(self.purchases.items()):
                self.purchases[pid] = Purchase(pid, p.client, p.products - {key})
            for lid, line in list(self.lines.items()):
                if line.product == key:
                    self.lines[lid] = Line(lid, line.purchase, None)

        @rule(pid=purchase_ids)
        def remove_purchase(self, pid: int) -> None:
            assert call(db.store(Purchase).remove, pid) is (pid in self.purchases)
            self.purchases.pop(pid, None)
            for lid in [lid for lid, line in self.lines.items() if line.purchase == pid]:
                del self.lines[lid]

        @invariant()
        def stores_match(self) -> None:
            assert {c.id for c in call(everything, Client)} == self.clients
            assert {p.sku for p in call(everything, Product)} == self.products
            assert call(everything, Purchase) == sorted(self.purchases.values(), key=lambda p: p.id)
            assert call(everything, Line) == sorted(self.lines.values(), key=lambda x: x.id)

        def teardown(self) -> None:
            assert portal.run(check_integrity, db) == []

    return Linked
