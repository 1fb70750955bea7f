"""Serializability, checked by hypothesis: a few transactions over a few keys of two models run
concurrently, their operations interleaved one step at a time in a generated order, and the
committed ones replayed serially against a dict must reproduce every value they read.

A transaction that wrote is serialized at its commit; a read-only one at its snapshot on a
backend with snapshots (memory, LMDB: it commits without validation) and at its commit on
Redis (its live reads are validated). Every backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netabase
from netabase._portal import TrioPortal

from .tx_models import TX_MODELS, Balance, Doctor

KEYS: dict[str, list[str]] = {"Balance": ["a", "b", "c"], "Doctor": ["x", "y"]}
MODELS: dict[str, type[Any]] = {"Balance": Balance, "Doctor": Doctor}
EXAMPLES = {"memory": 100, "lmdb": 30, "redis": 30}
SNAPSHOTS = {"memory", "lmdb"}

Op = tuple[Any, ...]
State = dict[str, dict[str, Any]]


def _record(model: str, key: str, value: Any) -> Any:
    return Balance(key, value) if model == "Balance" else Doctor(key, value)


def _updated(model: str, key: str, delta: int, old: Any) -> Any:
    """What ``update`` stores: a deposit of ``delta``, or a doctor's shift toggled."""
    if model == "Balance":
        return Balance(key, (0 if old is None else old.cents) + delta)
    return Doctor(key, True if old is None else not old.on_call)


# strategies


def _ops_of(model: str) -> st.SearchStrategy[Op]:
    key = st.sampled_from(KEYS[model])
    bound = st.none() | key
    value = st.integers(0, 9) if model == "Balance" else st.booleans()
    return st.one_of(
        st.tuples(st.just("get"), st.just(model), key),
        st.tuples(
            st.just("scan"),
            st.just(model),
            bound,
            bound,
            st.none() | st.integers(1, 2),
            st.booleans(),
        ),
        st.tuples(st.just("count"), st.just(model)),
        st.tuples(st.just("insert"), st.just(model), key, value),
        st.tuples(st.just("remove"), st.just(model), key),
        st.tuples(st.just("update"), st.just(model), key, st.integers(1, 5)),
    )


OPS = st.one_of(_ops_of("Balance"), _ops_of("Balance"), _ops_of("Doctor"))
"""Mostly the model with three keys, where ranges and phantoms are."""
INITIAL = st.fixed_dictionaries(
    {
        "Balance": st.dictionaries(st.sampled_from(KEYS["Balance"]), st.integers(0, 9)),
        "Doctor": st.dictionaries(st.sampled_from(KEYS["Doctor"]), st.booleans()),
    }
)


@attrs.frozen
class Spec:
    ops: list[Op]
    abort: bool  # raise inside the block instead of committing


SPECS = st.builds(
    Spec, st.lists(OPS, min_size=2, max_size=4), st.sampled_from([False, False, False, True])
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], list[Spec], list[int]]:
    initial = draw(INITIAL)
    specs = draw(st.lists(SPECS, min_size=2, max_size=5))
    steps = sum(len(spec.ops) + 1 for spec in specs)
    choices = draw(st.lists(st.integers(0, 4), min_size=steps, max_size=steps))
    return initial, specs, choices


# the reference


def _expected(state: State, op: Op) -> Any:
    """Run ``op`` on the dict ``state`` (changed in place); what the store should answer."""
    kind, model = op[0], op[1]
    records = state[model]
    if kind == "get":
        return records.get(op[2])
    if kind == "scan":
        _, _, start, stop, limit, reverse = op
        keys = sorted(
            k for k in records if (start is None or start <= k) and (stop is None or k < stop)
        )
        if reverse:
            keys.reverse()
        return [records[k] for k in keys[:limit]]
    if kind == "count":
        return len(records)
    if kind == "insert":  # insert returns the record as stored
        record = records[op[2]] = _record(model, op[2], op[3])
        return record
    if kind == "remove":
        return records.pop(op[2], None) is not None
    assert kind == "update"
    new = records[op[2]] = _updated(model, op[2], op[3], records.get(op[2]))
    return new


def _replay(state: State, index: int, spec: Spec, results: Sequence[Any], point: int) -> State:
    """``spec`` run serially on ``state``: every recorded result must match; the state after."""
    after = {model: dict(records) for model, records in state.items()}
    for step, (op, got) in enumerate(zip(spec.ops, results, strict=True)):
        want = _expected(after, op)
        assert got == want, (
            f"transaction {index} step {step} {op}: got {got!r}, a serial run at commit "
            f"{point} gives {want!r}"
        )
    return after


def _writes(spec: Spec, results: Sequence[Any]) -> bool:
    """Whether the transaction staged a write (a remove of an absent key stages none)."""
    return any(
        op[0] in ("insert", "update") or (op[0] == "remove" and got)
        for op, got in zip(spec.ops, results, strict=True)
    )


# running


async def _perform(tx: netabase.Transaction, op: Op) -> Any:
    kind, model = op[0], op[1]
    store = tx.store(MODELS[model])
    if kind == "get":
        return await store.get(op[2])
    if kind == "scan":
        _, _, start, stop, limit, reverse = op
        return [r async for r in store.scan(start=start, stop=stop, limit=limit, reverse=reverse)]
    if kind == "count":
        return await store.count()
    if kind == "insert":
        return await store.insert(_record(model, op[2], op[3]))
    if kind == "remove":
        return await store.remove(op[2])
    assert kind == "update"
    return await store.update(op[2], lambda old: _updated(model, op[2], op[3], old))


class _Abort(Exception):
    pass


@attrs.define
class _Run:
    """What happened to one transaction."""

    results: list[Any] = attrs.Factory(list)
    outcome: str = "running"
    start: int = -1  # write commits before its first operation (its snapshot)
    end: int = -1  # write commits before it ended


async def _reset(db: netabase.Database, initial: State) -> None:
    for name, model in MODELS.items():
        await db.store(model).remove_many(KEYS[name])
        await db.store(model).insert_many(
            _record(name, key, value) for key, value in initial[name].items()
        )


async def _contents(db: netabase.Database) -> State:
    return {
        name: {r.id if name == "Balance" else r.name: r async for r in db.store(model).scan()}
        for name, model in MODELS.items()
    }


async def _run_scenario(
    db: netabase.Database, kind: str, initial: State, specs: list[Spec], choices: list[int]
) -> None:
    await _reset(db, initial)
    start_state: State = {
        name: {key: _record(name, key, value) for key, value in initial[name].items()}
        for name in MODELS
    }
    runs = [_Run() for _ in specs]
    commits: list[int] = []  # the transactions that wrote, in commit order
    go = [trio.open_memory_channel[None](0) for _ in specs]
    done_send, done_recv = trio.open_memory_channel[bool](math.inf)

    async def transaction(index: int) -> None:
        spec, run, receive = specs[index], runs[index], go[index][1]
        try:
            async with db.transaction() as tx:
                for op in spec.ops:
                    await receive.receive()
                    if run.start < 0:
                        run.start = len(commits)
                    run.results.append(await _perform(tx, op))
                    done_send.send_nowait(False)
                await receive.receive()
                if spec.abort:
                    raise _Abort
            run.outcome = "committed"
            if _writes(spec, run.results):
                commits.append(index)
        except _Abort:
            run.outcome = "aborted"
        except netabase.TransactionConflict:
            run.outcome = "conflict"
        finally:
            run.end = len(commits)
            done_send.send_nowait(True)

    async with trio.open_nursery() as nursery:
        for index in range(len(specs)):
            nursery.start_soon(transaction, index)
        open_ = list(range(len(specs)))
        step = 0
        while open_:
            index = open_[choices[step % len(choices)] % len(open_)]
            step += 1
            await go[index][0].send(None)
            if await done_recv.receive():
                open_.remove(index)

    # Replay the writers in commit order; each read-only one at the state it was serialized at.
    states = [start_state]
    for position, index in enumerate(commits):
        states.append(_replay(states[-1], index, specs[index], runs[index].results, position))
    for index, run in enumerate(runs):
        if run.outcome == "committed" and index not in commits:
            point = run.start if kind in SNAPSHOTS else run.end
            _replay(states[point], index, specs[index], run.results, point)
        if run.outcome == "conflict":
            # Nothing committed since its first read: nothing it read can have changed.
            assert run.start < run.end, f"transaction {index} conflicted with nothing"
    assert await _contents(db) == states[-1]
    assert len(db._runtime.leases) == 0


def test_committed_transactions_are_equivalent_to_their_serial_order(
    backend_url: str, backend_kind: str
) -> None:
    portal = TrioPortal()
    portal.start()
    try:
        held = portal.enter(netabase.open(backend_url, models=TX_MODELS))
        try:
            db: netabase.Database = held.value

            @settings(
                max_examples=EXAMPLES[backend_kind],
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(scenarios())
            def check(scenario: tuple[State, list[Spec], list[int]]) -> None:
                portal.run(_run_scenario, db, backend_kind, *scenario)

            check()
        finally:
            held.close()
    finally:
        portal.stop()
