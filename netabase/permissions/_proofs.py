"""The proof engine: decides checks and judgements from grants, groups, parent chains and rules.

It keeps the caches one permission revision holds (decisions, group expansions, parent chains,
grants per object) and is usable without an actor: give it a backend, the schema facts, the
roles and an ``ask`` that answers `Peek` for a model.
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple

import msgpack

from .._errors import ConditionError, CorruptRecord
from .._keys import encode_str
from .._roles import Explanation, Grant, Roles, lookup_condition
from .._schema import Schema
from ..actors._messages import Peek
from ..actors._permission_spaces import (
    GRANTS_REVISION,
    MEMBER_OF,
    META,
    OBJECTS,
    REVISION,
    object_id,
)
from ..backends import Backend
from ._queries import Judgement, Obj, Query, parent_of
from ._scan import scan_prefix

Ask = Callable[[str, Peek], Awaitable[Any]]

logger = logging.getLogger("netabase.permissions")


class Verdict(NamedTuple):
    """One query's decision, with what decided it."""

    allowed: bool
    proof: tuple[str, Obj, str] | None
    """(holder, granted record, role) of the grant that allows it."""
    exists: bool
    condition: str | None = None
    error: str | None = None


class ProofEngine:
    """Proves, judges and explains; its caches belong to the revision last read by `sync`."""

    def __init__(
        self, backend: Backend, schema: Schema, roles: Roles, *, ask: Ask, cache_size: int
    ) -> None:
        self.backend = backend
        self.schema = schema
        self.roles = roles
        self.ask = ask
        """Sends a `Peek` to a store's query lane (which waits for nobody: no deadlock)."""
        self.cache_size = cache_size
        self.hits = 0
        self.misses = 0
        self.condition_errors = 0
        self.reset()

    def reset(self) -> None:
        """Forget every cached answer; only between computations."""
        self.revision: bytes | None = None
        self.grants: bytes | None = None
        self.decisions: OrderedDict[tuple[str, str, str, bytes], bool] = OrderedDict()
        self.groups: dict[str, tuple[str, ...]] = {}
        self.parents: dict[Obj, Obj | None] = {}
        self.object_grants: dict[bytes, list[tuple[str, str]]] = {}

    async def sync(self) -> bool:
        """Read the revision tokens; True if the revision moved (every cache then went)."""
        _, (token, grants) = await self.backend.read(META, [REVISION, GRANTS_REVISION])
        moved = token != self.revision
        if moved:
            self.reset()
            self.revision = token
        self.grants = grants
        return moved

    async def decide(self, queries: list[Query]) -> dict[Query, bool]:
        """Each query's answer, from the decision cache where it holds one."""
        out: dict[Query, bool] = {}
        todo: list[Query] = []
        decisions = self.decisions
        for query in queries:
            cached = decisions.get(query[:4]) if query[4] is None else None
            if cached is None:
                todo.append(query)
            else:
                decisions.move_to_end(query[:4])
                self.hits += 1
                out[query] = cached
        if todo:
            self.misses += len(todo)
            verdicts = await self.prove(todo)
            rules = self.schema.rules
            for query in todo:
                verdict = verdicts[query]
                out[query] = verdict.allowed
                # Conditions read the record, which changes without a revision: never cached.
                if verdict.exists and query[4] is None and (query[2], query[1]) not in rules:
                    self._remember(query[:4], verdict.allowed)
        return out

    async def prove(self, queries: list[Query]) -> dict[Query, Verdict]:
        """Decide each query from grants, then from the model's allow/require conditions."""
        expansions = await self.expand({q[0] for q in queries})
        chains = await self.chains({((q[2], q[3]), q[4]) for q in queries})
        await self._load_grants({obj for chain, _ in chains.values() for obj in chain})
        rules = self.schema.rules
        records = await self._records({(q[2], q[3]) for q in queries if (q[2], q[1]) in rules})
        out: dict[Query, Verdict] = {}
        for query in queries:
            principal, action, model, key, parent = query
            chain, exists = chains[((model, key), parent)]
            proof = self._proof(expansions[principal], action, chain)
            verdict = Verdict(proof is not None, proof, exists)
            rule = rules.get((model, action))
            if rule is not None:
                verdict = self._apply_rules(query, verdict, rule, records.get((model, key)))
            out[query] = verdict
        return out

    async def _records(self, objects: set[Obj]) -> dict[Obj, Any]:
        """Current records for condition checks, fetched through the stores' query lanes."""
        by_model: dict[str, list[bytes]] = {}
        for model, key in objects:
            by_model.setdefault(model, []).append(key)
        found: dict[Obj, Any] = {}
        for model, keys in by_model.items():
            for key, record in zip(keys, await self.ask(model, Peek(keys)), strict=True):
                if record is not None and not isinstance(record, CorruptRecord):
                    found[(model, key)] = record
        return found

    async def judge(self, items: list[Judgement]) -> tuple[list[bool], list[tuple[Obj, ...]]]:
        """Decide each judgement on the record and ancestors it states (see `Judgement`); also
        the stored chains it went by (from each ``above`` up, each object's parent next)."""
        expansions = await self.expand({item.principal for item in items})
        stored: set[tuple[Obj, Obj | None]] = {
            (item.above, None) for item in items if item.above is not None
        }
        chains = await self.chains(stored) if stored else {}
        full = [
            item.path + (chains[(item.above, None)][0] if item.above is not None else ())
            for item in items
        ]
        await self._load_grants({obj for chain in full for obj in chain})
        rules = self.schema.rules
        answers = []
        for item, chain in zip(items, full, strict=True):
            granted = item.mode == "require" or (
                self._proof(expansions[item.principal], item.action, chain) is not None
            )
            verdict = Verdict(granted, None, item.record is not None)
            rule = rules.get((item.model, item.action))
            if rule is not None:
                query = (item.principal, item.action, item.model, item.key, None)
                widen = item.mode == "existing"
                verdict = self._apply_rules(query, verdict, rule, item.record, widen=widen)
            answers.append(verdict.allowed)
        return answers, [chains[(above, None)][0] for above, _ in stored]

    def _apply_rules(
        self,
        query: Query,
        verdict: Verdict,
        rule: tuple[tuple[str, ...], tuple[str, ...]],
        record: Any,
        *,
        widen: bool = True,
    ) -> Verdict:
        """Allow rules widen access (only to a record that exists, and only with ``widen``);
        require rules then narrow it."""
        principal, _, model, key, _ = query
        allows, requires = rule
        allowed, condition, error = verdict.allowed, None, None
        if widen and not allowed and record is not None:
            for name in allows:
                holds, error = self._holds(name, principal, record, model, key)
                if holds:
                    allowed, condition = True, name
                    break
        if allowed:
            for name in requires:
                holds, failure = (
                    (False, None)
                    if record is None
                    else self._holds(name, principal, record, model, key)
                )
                if not holds:
                    allowed, condition, error = False, name, failure or error
                    break
        return Verdict(
            allowed, verdict.proof if allowed else None, verdict.exists, condition, error
        )

    def _holds(
        self, name: str, principal: str, record: Any, model: str, key: bytes
    ) -> tuple[bool, str | None]:
        """Run a condition; one that raises counts as not holding and is reported."""
        condition = lookup_condition(name)
        try:
            if condition is None:
                raise LookupError(f"condition {name!r} is not registered")
            answer = condition(principal, record)
            if not isinstance(answer, bool):
                if inspect.isawaitable(answer):
                    close = getattr(answer, "close", None)
                    if close is not None:
                        close()  # never awaited: no "coroutine was never awaited" warning
                raise TypeError(f"returned {answer!r}; a condition must return True or False")
            return answer, None
        except Exception as exc:
            error = ConditionError(name, model, self.schema.models[model].decode_key(key), exc)
            logger.warning("%s", error)
            self.condition_errors += 1
            return False, str(error)

    def _proof(
        self, principals: dict[str, str | None], action: str, chain: Sequence[Obj]
    ) -> tuple[str, Obj, str] | None:
        allows = self.roles.allows
        for obj in chain:
            for holder, role in self.object_grants.get(object_id(*obj), ()):
                if holder in principals and allows(role, action):
                    return holder, obj, role
        return None

    def _remember(self, key: tuple[str, str, str, bytes], allowed: bool) -> None:
        decisions = self.decisions
        decisions[key] = allowed
        if len(decisions) > max(self.cache_size, 1):
            decisions.popitem(last=False)

    async def expand(self, principals: set[str]) -> dict[str, dict[str, str | None]]:
        """For each principal, itself and every group it belongs to, transitively, each mapped
        to the member that brought it in (None for the principal itself)."""
        result: dict[str, dict[str, str | None]] = {p: {p: None} for p in principals}
        frontier = {p: [p] for p in principals}
        while frontier:
            await self._load_groups({m for members in frontier.values() for m in members})
            following: dict[str, list[str]] = {}
            for principal, members in frontier.items():
                seen = result[principal]
                for member in members:
                    for group in self.groups[member]:
                        if group not in seen:
                            seen[group] = member
                            following.setdefault(principal, []).append(group)
            frontier = following
        return result

    async def _load_groups(self, members: set[str]) -> None:
        for member in members - self.groups.keys():
            rows = await scan_prefix(self.backend, MEMBER_OF, encode_str(member))
            self.groups[member] = tuple(msgpack.unpackb(value) for _, value in rows)

    async def chains(
        self, wanted: set[tuple[Obj, Obj | None]]
    ) -> dict[tuple[Obj, Obj | None], tuple[tuple[Obj, ...], bool]]:
        """Each object's path to its root (itself first) and whether it exists.

        With an assumed parent (a record about to be written) the path goes from the object to
        that parent and on up from there. Resolved level by level, one query-lane request per
        model per level; no recursion, so depth is unlimited.
        """
        done: dict[tuple[Obj, Obj | None], tuple[tuple[Obj, ...], bool]] = {}
        for item in wanted:
            if item[1] == item[0]:  # a record written as top-level: judged on itself alone
                done[item] = ((item[0],), True)
        walks = {
            item: [item[0]] if item[1] is None else [item[0], item[1]]
            for item in wanted
            if item not in done
        }
        missing: set[Obj] = set()
        while walks:
            unknown = {path[-1] for path in walks.values()} - self.parents.keys() - missing
            await self._load_parents(unknown, missing)
            for item, path in list(walks.items()):
                last = path[-1]
                parent = None if last in missing else self.parents[last]
                if parent is None or parent in path:
                    exists = item[1] is not None or path[0] not in missing
                    done[item] = (tuple(path), exists)
                    del walks[item]
                else:
                    path.append(parent)
        return done

    async def _load_parents(self, objects: set[Obj], missing: set[Obj]) -> None:
        by_model: dict[str, list[bytes]] = {}
        for model, key in objects:
            by_model.setdefault(model, []).append(key)
        for model, keys in by_model.items():
            info = self.schema.models[model]
            records = await self.ask(model, Peek(keys))
            for key, record in zip(keys, records, strict=True):
                if record is None:
                    missing.add((model, key))  # not cached: it may appear without a revision
                else:
                    self.parents[(model, key)] = parent_of(info, record)

    async def _load_grants(self, objects: Iterable[Obj]) -> None:
        for obj in objects:
            oid = object_id(*obj)
            if oid not in self.object_grants:
                rows = await scan_prefix(self.backend, OBJECTS, oid)
                self.object_grants[oid] = [_pair(value) for _, value in rows]

    async def explain(self, query: Query) -> Explanation:
        """The query's decision with its reasons: groups, the grant, the records it went by."""
        principal, action, model, key, _ = query
        models = self.schema.models
        shown = models[model].decode_key(key)
        (verdict,) = (await self.prove([query])).values()
        if verdict.proof is None:
            return Explanation(
                principal,
                action,
                model,
                shown,
                verdict.allowed,
                condition=verdict.condition,
                error=verdict.error,
            )
        holder, granted, role = verdict.proof
        expansion = (await self.expand({principal}))[principal]
        groups = [holder]
        while (step := expansion.get(groups[-1])) is not None:
            groups.append(step)
        chain, _ = (await self.chains({((model, key), None)}))[((model, key), None)]
        below = chain[: chain.index(granted) + 1]
        return Explanation(
            principal,
            action,
            model,
            shown,
            True,
            groups=tuple(reversed(groups)),
            grant=Grant(holder, granted[0], models[granted[0]].decode_key(granted[1]), role),
            objects=tuple((m, models[m].decode_key(k)) for m, k in reversed(below)),
            condition=verdict.condition,
        )


def _pair(value: bytes) -> tuple[str, str]:
    principal, role = msgpack.unpackb(value)
    return principal, role
