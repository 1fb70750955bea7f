"""Permission answers against a brute-force reference, under random changes, on every backend.

The reference walks every grant for every question: the principal's groups by closure over the
membership edges, the record's ancestors by following parent links of the records that exist.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import netabase
from netabase._portal import TrioPortal

from .perm_models import PERM_MODELS, Node

NODES = st.integers(0, 7)
PRINCIPALS = st.sampled_from(["alice", "bob", "g1", "g2", "g3"])
ROLES = st.sampled_from(["read", "write", "admin"])
ACTIONS = ("read", "write", "admin")
LEVEL = {"read": 0, "write": 1, "admin": 2}


@pytest.mark.slow_on("lmdb", "redis")
def test_permissions_match_brute_force(backend_url: str) -> None:
    portal = TrioPortal()
    portal.start()
    try:
        held = portal.enter(netabase.open(backend_url, models=PERM_MODELS, cache_size=64))
        try:
            run_state_machine_as_test(
                _machine(portal, held.value),
                settings=settings(
                    max_examples=20,
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
    perms, nodes = db.permissions, db.store(Node)

    def call(fn: Any, *args: Any) -> Any:
        async def go() -> Any:
            return await fn(*args)

        return portal.run(go)

    async def listing(principal: str, action: str) -> list[Any]:
        return [k async for k in perms.list_objects(principal, action, Node, page_size=3)]

    class Reference(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            call(nodes.remove_many, list(range(8)))
            for principal in ("alice", "bob", "g1", "g2", "g3"):
                for node in range(8):
                    call(perms.revoke, principal, Node, node)
                for group in ("g1", "g2", "g3"):
                    call(perms.remove_member, group, principal)
            self.parents: dict[int, int | None] = {}
            self.grants: set[tuple[str, int, str]] = set()
            self.members: set[tuple[str, str]] = set()

        # reference answers

        def closure(self, principal: str) -> set[str]:
            found, frontier = {principal}, [principal]
            while frontier:
                member = frontier.pop()
                for group, m in self.members:
                    if m == member and group not in found:
                        found.add(group)
                        frontier.append(group)
            return found

        def chain(self, node: int) -> list[int]:
            path = [node]
            while node in self.parents and self.parents[node] is not None:
                node = self.parents[node]  # type: ignore[assignment]
                path.append(node)
            return path

        def allowed(self, principal: str, action: str, node: int) -> bool:
            who, where = self.closure(principal), set(self.chain(node))
            return any(
                p in who and n in where and LEVEL[role] >= LEVEL[action]
                for p, n, role in self.grants
            )

        # changes

        @rule(node=NODES, parent=st.none() | NODES)
        def put_node(self, node: int, parent: int | None) -> None:
            cycle = parent is not None and node in self.chain(parent)
            dangling = parent is not None and parent != node and parent not in self.parents
            try:
                call(nodes.insert, Node(node, parent))
            except netabase.HierarchyCycle:
                assert cycle and not dangling
                return
            except netabase.LinkViolation:
                assert dangling
                return
            assert not cycle and not dangling
            self.parents[node] = parent

        @rule(node=NODES)
        def remove_node(self, node: int) -> None:
            call(nodes.remove, node)
            self.parents.pop(node, None)
            for child, parent in list(self.parents.items()):
                if parent == node:
                    self.parents[child] = None

        @rule(principal=PRINCIPALS, node=NODES, role=ROLES)
        def grant(self, principal: str, node: int, role: str) -> None:
            call(perms.grant, principal, Node, node, role)
            self.grants.add((principal, node, role))

        @rule(principal=PRINCIPALS, node=NODES)
        def revoke(self, principal: str, node: int) -> None:
            held = {g for g in self.grants if g[:2] == (principal, node)}
            assert call(perms.revoke, principal, Node, node) == len(held)
            self.grants -= held

        @rule(group=st.sampled_from(["g1", "g2", "g3"]), member=PRINCIPALS)
        def add_member(self, group: str, member: str) -> None:
            cycle = group == member or member in self.closure(group)
            try:
                call(perms.add_member, group, member)
            except netabase.HierarchyCycle:
                assert cycle
                return
            assert not cycle
            self.members.add((group, member))

        @rule(group=st.sampled_from(["g1", "g2", "g3"]), member=PRINCIPALS)
        def remove_member(self, group: str, member: str) -> None:
            assert call(perms.remove_member, group, member) is ((group, member) in self.members)
            self.members.discard((group, member))

        # every question, every time

        @invariant()
        def answers_match(self) -> None:
            questions = [
                (p, a, n) for p in ("alice", "bob", "g1") for a in ACTIONS for n in range(8)
            ]
            expected = [self.allowed(p, a, n) for p, a, n in questions]
            got = call(perms.check_many, [(p, a, Node, n) for p, a, n in questions])
            assert got == expected
            for p, a, n in questions[::7]:
                assert call(perms.check, p, a, Node, n) is self.allowed(p, a, n)
                assert call(perms.explain, p, a, Node, n).allowed is self.allowed(p, a, n)
            for p in ("alice", "g2"):
                for a in ("read", "admin"):
                    granted = {n for _, n, _ in self.grants} | set(self.parents)
                    want = sorted(n for n in granted if self.allowed(p, a, n))
                    assert call(listing, p, a) == want

    return Reference
