"""Permission check costs, and the same question asked of pycasbin, in the same run.

    python benchmarks/permissions.py [--quick]

A 10-level hierarchy of nodes, 100k grants spread over other principals and nodes, and a user
who reaches the leaf through a group that holds a grant on the root.

* cached checks: `check_many` batches through the permission actor, decisions cached;
* uncached checks: the cache is invalidated before every check (a grant elsewhere moves the
  revision), so each check walks 10 parents through the store actors and reads the grants;
* pycasbin: RBAC with a resource hierarchy (g2) and the same 100k policies; `enforce` is asked
  the same question.
"""

from __future__ import annotations

import argparse
import time

import attrs
import casbin
import trio
from _common import scratch_dir

import netabase

DEPTH = 10

_CASBIN_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
g2 = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && g2(r.obj, p.obj) && r.act == p.act
"""


@netabase.model(key="id", parent="parent")
@attrs.frozen
class Node:
    id: int
    parent: int | None = netabase.link("self", required=False)


class Config:
    grants = 100_000
    checks = 20_000
    uncached = 300
    casbin_checks = 50


async def netabase_figures(url: str) -> tuple[float, float]:
    async with netabase.open(url, models=[Node], cache_size=200_000) as db:
        nodes, perms = db.store(Node), db.permissions
        await nodes.insert_many([Node(0)] + [Node(i, i - 1) for i in range(1, DEPTH)])
        await nodes.insert_many(Node(1000 + i) for i in range(1000))
        for start in range(0, Config.grants, 5000):
            async with trio.open_nursery() as nursery:
                for i in range(start, start + 5000):
                    nursery.start_soon(perms.grant, f"user{i}", Node, 1000 + i % 1000, "read")
        await perms.add_member("staff", "alice")
        await perms.grant("staff", Node, 0, "read")
        leaf = DEPTH - 1
        question = [("alice", "read", Node, leaf)] * 1000
        assert all(await perms.check_many(question))
        started = time.perf_counter()
        for _ in range(Config.checks // 1000):
            await perms.check_many(question)
        cached = (time.perf_counter() - started) / Config.checks
        total = 0.0
        for i in range(Config.uncached):
            await perms.grant("someone", Node, 1000 + i % 1000, "read")  # new revision
            started = time.perf_counter()
            assert await perms.check("alice", "read", Node, leaf)
            total += time.perf_counter() - started
        return cached, total / Config.uncached


def casbin_figure() -> float:
    model = casbin.model.Model()
    model.load_model_from_text(_CASBIN_MODEL)
    enforcer = casbin.Enforcer(model)
    enforcer.add_policies(
        [[f"user{i}", f"node{1000 + i % 1000}", "read"] for i in range(Config.grants)]
    )
    enforcer.add_policy("staff", "node0", "read")
    enforcer.add_grouping_policy("alice", "staff")
    for i in range(1, DEPTH):
        enforcer.add_named_grouping_policy("g2", f"node{i}", f"node{i - 1}")
    leaf = f"node{DEPTH - 1}"
    assert enforcer.enforce("alice", leaf, "read")
    started = time.perf_counter()
    for _ in range(Config.casbin_checks):
        enforcer.enforce("alice", leaf, "read")
    return (time.perf_counter() - started) / Config.casbin_checks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        Config.grants, Config.checks, Config.uncached, Config.casbin_checks = 20_000, 5000, 50, 10
    url = f"lmdb://{scratch_dir('netabase-bench-perm-') / 'db'}?sync=false"
    cached, uncached = trio.run(netabase_figures, url)
    print(
        f"{Config.grants:,} grants, a {DEPTH}-level hierarchy, a user in a group granted the root"
    )
    print(
        f"  netabase cached check (check_many of 1000)  {cached * 1e6:8.2f} µs/check "
        f"(target <= 10: {'met' if cached * 1e6 <= 10 else 'NOT met'})"
    )
    print(f"  netabase uncached check, 10 levels           {uncached * 1e6:8.1f} µs/check")
    per = casbin_figure()
    print(f"  pycasbin enforce, same question               {per * 1e6:8.1f} µs/check")
    print(
        f"  netabase cached vs pycasbin: {per / cached:,.0f}x faster (target >= 100x: "
        f"{'met' if per / cached >= 100 else 'NOT met'}); uncached: {per / uncached:,.1f}x"
    )


if __name__ == "__main__":
    main()
