"""The permission actor: hierarchical access checks with caches that are never stale.

State lives in the backend, next to the data, so it survives restarts and is shared by every
process on one Redis:

* ``~perm.grants``   principal | object-id | role  -> (model, key, role)   (what p holds)
* ``~perm.objects``  object-id | principal | role  -> (principal, role)    (who holds what on o)
* ``~perm.members``  group | member, and ``~perm.memberof`` member | group (group nesting)
* ``~perm.meta``     ``revision``: a random token rewritten by every change that can alter a
  decision: grant, revoke, membership change, and a record's parent link changing or going away
  (store actors write it in the same atomic batch as the record); ``grants``: a second token
  rewritten by grants, revokes and membership changes only, which enforced writes pin.

Every cache here (decisions, group expansions, parent chains, grants per object) belongs to one
revision. A change made in this process clears them synchronously before it is acknowledged; a
change made by another process is noticed at the next check batch, which reads the token first.
Nothing expires on a timer, so nothing is served stale. Parent chains are resolved by asking the
store actors' query lanes (which never wait on anyone: no deadlock), level by level, batched.
"""

from __future__ import annotations

import bisect
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple

import msgpack
import trio

from .._errors import (
    ConditionError,
    CorruptRecord,
    HierarchyCycle,
    NetabaseError,
    ValidationError,
)
from .._keys import component_range, encode_str
from .._model import ModelInfo
from .._roles import Explanation, Grant, Roles, lookup_condition
from ..backends import Backend, Delete, Expect, ExpectKeys, Op, Put, WriteBatch
from ..backends._paging import scan_pages
from ._actor import BatchingActor, in_rounds
from ._config import RuntimeConfig
from ._facts import SchemaFacts
from ._links import ref_prefix
from ._mailbox import Mailbox, Request
from ._messages import (
    PERMISSION_WRITES,
    AddMember,
    Check,
    Explain,
    GrantRole,
    Judge,
    ListObjects,
    Peek,
    RemoveMember,
    RevokeRole,
)
from ._permission_spaces import (
    GRANTS,
    GRANTS_REVISION,
    MEMBER_OF,
    MEMBERS,
    META,
    OBJECTS,
    REVISION,
    grant_key,
    grants_op,
    membership_key,
    object_id,
    object_key,
    revision_op,
)
from ._referrers import read_referrers
from ._stats import ActorStats

Ask = Callable[[str, Peek], Awaitable[Any]]

PAGE = 1000

logger = logging.getLogger("netabase.permissions")

Obj = tuple[str, bytes]
"""A record's identity: model name and encoded key."""

Query = tuple[str, str, str, bytes, "Obj | None"]
"""principal, action, model, encoded key, and optionally the parent to assume (new records)."""


class Judgement(NamedTuple):
    """A decision on a record in a stated state (the enforced view's writes judge these).

    ``mode`` "existing": a grant on its chain or an allow rule, then its require rules;
    "create" (a record put where it is not yet, or moved with the records below it): a grant
    on its chain only, since allow rules widen access to the records that exist, one at a time,
    and never give a place to put one, then the require rules; "require": the require rules
    alone.
    """

    principal: str
    action: str
    model: str
    key: bytes
    mode: str
    record: Any
    """The record judged (None: absent or undecodable)."""
    path: tuple[Obj, ...]
    """The record and the ancestors given with it (written by the same call), nearest first."""
    above: Obj | None
    """The first ancestor taken as stored: its stored chain follows ``path`` (None: it ends)."""


class Verdict(NamedTuple):
    allowed: bool
    proof: tuple[str, Obj, str] | None
    """(holder, granted record, role) of the grant that allows it."""
    exists: bool
    condition: str | None = None
    error: str | None = None


async def _scan_prefix(backend: Backend, space: str, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """Every row whose leading elements are ``prefix`` (complete elements: names, object ids)."""
    lo, upper = component_range(prefix)
    return [row async for rows in scan_pages(backend, space, lo, upper, page=PAGE) for row in rows]


class PermissionActor:
    """Serves checks, explanations, listings and permission writes; see the module docstring."""

    name = "~permissions"

    def __init__(
        self,
        backend: Backend,
        schema: SchemaFacts,
        roles: Roles,
        config: RuntimeConfig,
        *,
        ask: Ask,
        on_drained: Callable[[str], None],
    ) -> None:
        self.backend = backend
        self.schema = schema
        self.ask = ask
        """Sends a `Peek` to a store's query lane (which waits for nobody: no deadlock)."""
        self.on_drained = on_drained
        self.roles = roles
        self.config = config
        self.mailbox = Mailbox("permissions", config.mailbox_size)
        self.lane = BatchingActor(self.name, self.mailbox, config.max_batch, self._serve_batch)
        self.hits = 0
        self.misses = 0
        self.condition_errors = 0
        self._reset()

    # -- supervision -------------------------------------------------------------------------

    async def run(self) -> None:
        await self.lane.run()
        self.on_drained(self.name)

    def take_inflight(self) -> list[Request]:
        return self.lane.take_inflight()

    def reset(self) -> None:
        self._reset()
        self.lane.restarted()

    def invalidate(self) -> None:
        """A change was made elsewhere in this process (called before it is acknowledged): every
        cached answer goes before the next batch. Not at once: a batch in progress may be
        awaiting a load, and its maps must not vanish under it; what it caches goes too."""
        self._stale = True

    def _reset(self) -> None:
        """Forget every cached answer; only between computations (the actor's own task)."""
        self._stale = False
        self.revision: bytes | None = None
        self.grants: bytes | None = None
        self.decisions: OrderedDict[tuple[str, str, str, bytes], bool] = OrderedDict()
        self.groups: dict[str, tuple[str, ...]] = {}
        self.parents: dict[Obj, Obj | None] = {}
        self.object_grants: dict[bytes, list[tuple[str, str]]] = {}
        self.listings: dict[tuple[str, str, str], tuple[tuple[int, ...], list[bytes]]] = {}

    def statistics(self) -> ActorStats:
        """The lane's counters; the cache figures are the decision cache's."""
        return self.lane.statistics(
            cache_size=len(self.decisions), cache_hits=self.hits, cache_misses=self.misses
        )

    async def _serve_batch(self, live: list[Request]) -> None:
        if self._stale:
            self._reset()
        writes = [r for r in live if isinstance(r.message, PERMISSION_WRITES)]
        if writes:
            with trio.CancelScope(shield=True):
                await in_rounds(writes, self._write_round, "permissions")
        reads = [r for r in live if not isinstance(r.message, PERMISSION_WRITES)]
        if reads:
            try:
                await self._serve_reads(reads)
            except NetabaseError as exc:
                for request in reads:
                    request.fail(exc)

    # -- reads -------------------------------------------------------------------------------

    async def _serve_reads(self, requests: list[Request]) -> None:
        if self._stale:  # changed while this batch's writes were applied
            self._reset()
        await self._sync_revision()
        checks = [r.message for r in requests if isinstance(r.message, Check)]
        queries = [q for check in checks for q in check.queries]
        decided = await self._decide(queries) if queries else {}
        for request in requests:
            message = request.message
            if isinstance(message, Check):
                request.reply([decided[q] for q in message.queries])
                continue
            try:  # whatever one judgement, explain or listing raises fails it, not the actor
                if isinstance(message, Judge):
                    # The grants token read at this batch's start, and the stored chains judged
                    # on: every answer holds while they stand.
                    answers, chains = await self._judge(list(message.items))
                    request.reply((answers, self.grants, chains))
                elif isinstance(message, Explain):
                    request.reply(await self._explain(message.query))
                elif isinstance(message, ListObjects):
                    request.reply(
                        await self._list(
                            message.principal,
                            message.action,
                            message.model,
                            message.after,
                            message.limit,
                        )
                    )
            except Exception as exc:
                request.fail(exc)

    async def _sync_revision(self) -> None:
        _, (token, grants) = await self.backend.read(META, [REVISION, GRANTS_REVISION])
        if token != self.revision:
            self._reset()
            self.revision = token
        self.grants = grants

    async def _decide(self, queries: list[Query]) -> dict[Query, bool]:
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
            verdicts = await self._prove(todo)
            rules = self.schema.rules
            for query in todo:
                verdict = verdicts[query]
                out[query] = verdict.allowed
                # Conditions read the record, which changes without a revision: never cached.
                if verdict.exists and query[4] is None and (query[2], query[1]) not in rules:
                    self._remember(query[:4], verdict.allowed)
        return out

    async def _prove(self, queries: list[Query]) -> dict[Query, Verdict]:
        """Decide each query from grants, then from the model's allow/require conditions."""
        expansions = await self._expand({q[0] for q in queries})
        chains = await self._chains({((q[2], q[3]), q[4]) for q in queries})
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

    async def _judge(self, items: list[Judgement]) -> tuple[list[bool], list[tuple[Obj, ...]]]:
        """Decide each judgement on the record and ancestors it states (see `Judgement`); also
        the stored chains it went by (from each ``above`` up, each object's parent next)."""
        expansions = await self._expand({item.principal for item in items})
        stored: set[tuple[Obj, Obj | None]] = {
            (item.above, None) for item in items if item.above is not None
        }
        chains = await self._chains(stored) if stored else {}
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
        if len(decisions) > max(self.config.cache_size, 1):
            decisions.popitem(last=False)

    async def _expand(self, principals: set[str]) -> dict[str, dict[str, str | None]]:
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
            rows = await _scan_prefix(self.backend, MEMBER_OF, encode_str(member))
            self.groups[member] = tuple(msgpack.unpackb(value) for _, value in rows)

    async def _chains(
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
                    self.parents[(model, key)] = _parent_of(info, record)

    async def _load_grants(self, objects: Iterable[Obj]) -> None:
        for obj in objects:
            oid = object_id(*obj)
            if oid not in self.object_grants:
                rows = await _scan_prefix(self.backend, OBJECTS, oid)
                self.object_grants[oid] = [_pair(value) for _, value in rows]

    async def _explain(self, query: Query) -> Explanation:
        principal, action, model, key, _ = query
        models = self.schema.models
        shown = models[model].decode_key(key)
        (verdict,) = (await self._prove([query])).values()
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
        expansion = (await self._expand({principal}))[principal]
        groups = [holder]
        while (step := expansion.get(groups[-1])) is not None:
            groups.append(step)
        chain, _ = (await self._chains({((model, key), None)}))[((model, key), None)]
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

    async def _list(
        self, principal: str, action: str, model: str, after: bytes | None, limit: int
    ) -> list[bytes]:
        """Keys of ``model`` that ``principal`` may ``action``, in key order, after a cursor.

        A listing is kept for the next page while no record of the hierarchy changed: new
        records do not move the permission revision, so the spaces' versions are compared too.
        """
        key = (principal, action, model)
        versions = await self._hierarchy_versions(model)
        cached = self.listings.get(key)
        if cached is not None and cached[0] == versions:
            listing = cached[1]
        else:
            listing = await self._compute_listing(principal, action, model)
            if (model, action) not in self.schema.rules:  # conditions read changing records
                self.listings[key] = (versions, listing)
        start = 0 if after is None else bisect.bisect_right(listing, after)
        return listing[start : start + limit]

    async def _hierarchy_versions(self, model: str) -> tuple[int, ...]:
        models = self.schema.models
        names = sorted({model} | self.schema.hierarchy_parents)
        versions = []
        for name in names:
            version, _ = await self.backend.read(models[name].space, [])
            versions.append(version)
        return tuple(versions)

    async def _compute_listing(self, principal: str, action: str, model: str) -> list[bytes]:
        expansion = (await self._expand({principal}))[principal]
        granted: set[Obj] = set()
        for holder in expansion:
            rows = await _scan_prefix(self.backend, GRANTS, encode_str(holder))
            for _, value in rows:
                granted_model, granted_key, role = msgpack.unpackb(value)
                if self.roles.allows(role, action) and granted_model in self.schema.models:
                    granted.add((granted_model, granted_key))
        found = {key for m, key in granted if m == model}
        if (model, action) in self.schema.rules:
            return await self._filter_by_rules(principal, action, model, found)
        frontier = [obj for obj in granted if obj[0] in self.schema.hierarchy_parents]
        seen = set(frontier)
        while frontier:
            following = []
            for obj in frontier:
                for child in await self._children(obj):
                    if child not in seen:
                        seen.add(child)
                        following.append(child)
                        if child[0] == model:
                            found.add(child[1])
            frontier = following
        return sorted(found)

    async def _filter_by_rules(
        self, principal: str, action: str, model: str, granted: set[bytes]
    ) -> list[bytes]:
        """With conditions, decide record by record: every record may be allowed by a rule."""
        info = self.schema.models[model]
        candidates = set(granted)
        async for rows in scan_pages(self.backend, info.space, page=PAGE):
            candidates.update(key for key, _ in rows)
        ordered = sorted(candidates)
        decided = await self._prove([(principal, action, model, k, None) for k in ordered])
        return [key for key in ordered if decided[(principal, action, model, key, None)].allowed]

    async def _children(self, obj: Obj) -> list[Obj]:
        """Records whose parent link names ``obj``, from the reverse index (verified)."""
        target = self.schema.models[obj[0]]
        entries = await read_referrers(self.backend, target.ref_space, ref_prefix(obj[1]))
        children = []
        for entry in entries:
            source = self.schema.models.get(entry.source)
            if source is None or source.parent is None or source.parent.field != entry.field:
                continue
            _, (value,) = await self.backend.read(source.space, [entry.source_key])
            if value is None:
                continue
            try:
                record = source.codec.decode(value, entry.source_key)
            except CorruptRecord:
                continue
            if _parent_of(source, record) == obj:
                children.append((source.name, entry.source_key))
        return children

    # -- writes ------------------------------------------------------------------------------

    async def _write_round(self, pending: list[Request]) -> list[Request]:
        """Plan, apply and answer ``pending``; return those to plan again."""
        plans: list[tuple[Request, WriteBatch, Any]] = []
        for request in pending:
            try:
                batch, reply = await self._plan(request)
            except NetabaseError as exc:
                request.fail(exc)
                continue
            plans.append((request, batch, reply))
        if not plans:
            return []
        try:
            outcomes = await self._apply([batch for _, batch, _ in plans])
        except NetabaseError as exc:
            for request, _, _ in plans:
                request.fail(exc)
            return []
        finally:
            self._reset()
        retry = []
        for (request, _, reply), unmet in zip(plans, outcomes, strict=True):
            if isinstance(unmet, NetabaseError):
                request.fail(unmet)
            elif unmet is None:
                request.reply(reply)
            else:
                retry.append(request)
        return retry

    async def _apply(self, batches: list[WriteBatch]) -> list[int | NetabaseError | None]:
        """Each batch's outcome: None (applied), its first unmet condition, or the error its
        own operations caused (a key the backend refuses), which fails no other batch."""
        backend = self.backend
        try:
            return list((await backend.apply(batches)).failed)
        except ValidationError as exc:
            if len(batches) == 1:
                return [exc]
        outcomes: list[int | NetabaseError | None] = []
        for index, batch in enumerate(batches):  # rare: find the culprit, apply the others
            try:
                outcomes.extend((await backend.apply([batch])).failed)
            except ValidationError as exc:
                outcomes.append(exc)
            except NetabaseError as exc:  # the backend failed: the ones applied stay answered
                outcomes.extend([exc] * (len(batches) - index))
                break
        return outcomes

    async def _plan(self, request: Request) -> tuple[WriteBatch, Any]:
        message = request.message
        if isinstance(message, GrantRole):
            principal, model, key, role = (
                message.principal,
                message.model,
                message.key,
                message.role,
            )
            oid = object_id(model, key)
            ops: list[Op] = [
                Put(GRANTS, grant_key(principal, oid, role), msgpack.packb((model, key, role))),
                Put(OBJECTS, object_key(oid, principal, role), msgpack.packb((principal, role))),
                revision_op(),
                grants_op(),
            ]
            return WriteBatch(tuple(ops)), None
        if isinstance(message, RevokeRole):
            principal, model, key = message.principal, message.model, message.key
            oid = object_id(model, key)
            lo, hi = component_range(encode_str(principal) + oid)
            rows = await _scan_prefix(self.backend, GRANTS, encode_str(principal) + oid)
            roles = [
                r for _, _, r in (msgpack.unpackb(v) for _, v in rows) if message.role in (None, r)
            ]
            ops = []
            for each in roles:
                ops.append(Delete(GRANTS, grant_key(principal, oid, each)))
                ops.append(Delete(OBJECTS, object_key(oid, principal, each)))
            ops.append(revision_op())
            ops.append(grants_op())
            # The count rests on these reads: a write in between (this round, elsewhere) re-plans.
            held = ExpectKeys(GRANTS, lo, frozenset(k for k, _ in rows), hi)
            return WriteBatch(tuple(ops), (held,)), len(roles)
        assert isinstance(message, (AddMember, RemoveMember))
        group, member = message.group, message.member
        member_of = membership_key(member, group)
        if isinstance(message, RemoveMember):
            _, (present,) = await self.backend.read(MEMBER_OF, [member_of])
            ops = [
                Delete(MEMBERS, membership_key(group, member)),
                Delete(MEMBER_OF, member_of),
                revision_op(),
                grants_op(),
            ]
            return WriteBatch(tuple(ops), (Expect(MEMBER_OF, member_of, present),)), (
                present is not None
            )
        expects = await self._refuse_cycle(group, member)
        ops = [
            Put(MEMBERS, membership_key(group, member), msgpack.packb(member)),
            Put(MEMBER_OF, member_of, msgpack.packb(group)),
            revision_op(),
            grants_op(),
        ]
        return WriteBatch(tuple(ops), tuple(expects)), None

    async def _refuse_cycle(self, group: str, member: str) -> list[ExpectKeys]:
        """Refuse ``member`` joining ``group`` if ``group`` is already (within) ``member``.

        The walk's reads become conditions, so a concurrent change elsewhere (another process)
        makes the write re-plan instead of closing a cycle.
        """
        if group == member:
            raise HierarchyCycle(
                "permissions", f"group {group!r} cannot contain itself", field="members"
            )
        expects = []
        seen = {group}
        frontier = [group]
        while frontier:
            following = []
            for principal in frontier:
                lo, hi = component_range(encode_str(principal))
                rows = await _scan_prefix(self.backend, MEMBER_OF, lo)
                expects.append(ExpectKeys(MEMBER_OF, lo, frozenset(k for k, _ in rows), hi))
                for _, value in rows:
                    parent = msgpack.unpackb(value)
                    if parent == member:
                        raise HierarchyCycle(
                            "permissions",
                            f"adding {member!r} to {group!r} would make a membership cycle "
                            f"({group!r} is already within {member!r})",
                            field="members",
                        )
                    if parent not in seen:
                        seen.add(parent)
                        following.append(parent)
            frontier = following
        return expects


def _pair(value: bytes) -> tuple[str, str]:
    principal, role = msgpack.unpackb(value)
    return principal, role


def _parent_of(info: ModelInfo[Any], record: Any) -> Obj | None:
    if info.parent is None or isinstance(record, CorruptRecord):
        return None
    keys = info.parent.encoded_keys_of(record)
    return (info.parent.target.name, keys[0]) if keys else None
