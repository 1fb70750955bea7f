"""Turning write requests into conditional backend batches, and applying their effects.

Each write request (one ``insert``/``insert_many``/``remove``/``remove_many`` call) becomes one
`WriteBatch`, applied all-or-nothing. Batches carry conditions on the values they were planned
against; when another writer got there first the backend refuses the batch and the actor plans
it again, so nothing is ever applied on top of a value it did not see.

Links add three things to an insert: the record's reverse-index entries are diffed against the
stored record; every newly named target is checked by asking the target store's query lane
(batched, one request per target store, positive answers cached); and the batch carries an
"exists" condition per new target, so a target deleted between the answer and the commit makes
the backend refuse the batch instead of leaving a dangling link.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .._codec import record_version
from .._errors import (
    AlreadyExists,
    CorruptRecord,
    HierarchyCycle,
    LinkViolation,
    NetabaseError,
    WriteConflict,
)
from .._layout import ref_key, ref_value
from .._model import LinkInfo, ModelInfo
from ..backends import EXISTS, Condition, Delete, Expect, Op, Put, Stamped, WriteBatch
from ._cascade import plan_removal
from ._claims import ClaimRefusal, claim_kinds
from ._effects import CacheEffects
from ._links import LinkCache
from ._mailbox import Request
from ._messages import Exists, Insert, Remove
from ._permission_spaces import revision_op

if TYPE_CHECKING:
    from ._store_actor import StoreActor


class PutItem(NamedTuple):
    """One record of an insert, checked and encoded in the caller's task."""

    key: bytes
    value: bytes
    record: Any
    links: tuple[tuple[bytes, ...], ...]
    """The encoded target keys each link field names, in `ModelInfo.links` order."""


class Guard(NamedTuple):
    """What an enforced write was judged on: conditions its batch must meet too (the
    permission revision and the judged records' stored bytes), and for a removal every record
    it was allowed to delete or rewrite."""

    expects: tuple[Condition, ...]
    touches: frozenset[tuple[str, bytes]] | None = None


class Rejudge(Exception):
    """An enforced write's judged state changed before it committed: nothing was written, and
    the enforced view judges it again (never shown to callers)."""


def _guard_of(request: Request) -> Guard | None:
    message = request.message
    assert isinstance(message, (Insert, Remove))
    return message.guard


def _items(request: Request) -> Sequence[PutItem]:
    message = request.message
    assert isinstance(message, Insert)
    return message.items


def _guarded(
    batch: WriteBatch, guard: Guard | None, errors: dict[int, Callable[[], BaseException]]
) -> WriteBatch:
    """``batch`` with the guard's conditions last; any of them unmet fails with `Rejudge`."""
    if guard is None or not guard.expects:
        return batch
    base = len(batch.expects)
    for index in range(len(guard.expects)):
        errors[base + index] = Rejudge
    return WriteBatch(batch.ops, batch.expects + guard.expects)


class WritePlan:
    """One request's batch and what to do once it is (or is not) applied."""

    __slots__ = ("batch", "effects", "error", "errors", "reply", "request")

    def __init__(
        self,
        request: Request,
        batch: WriteBatch | None,
        reply: Any = None,
        *,
        effects: CacheEffects | None = None,
        errors: Mapping[int, Callable[[], BaseException]] | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.request = request
        self.batch = batch
        self.reply = reply
        self.effects = effects
        self.errors = errors
        self.error = error

    def error_for(self, unmet: int) -> BaseException | None:
        """The error for an unmet condition, or None when the request should be planned again."""
        build = self.errors.get(unmet) if self.errors else None
        return None if build is None else build()

    def finish_without_write(self) -> None:
        if self.error is not None:
            self.request.fail(self.error)
        else:
            self.request.reply(self.reply)


class _BatchState:
    """What the planner knows while planning one batch: stored values, overlaid by the plans
    made so far in the batch (a later request sees an earlier one's writes)."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes | None] = {}
        """Stored values, or `Stamped` ones an earlier plan of the batch puts."""
        self.stored: dict[bytes, bytes | None] = {}
        """Values as the backend returned them, before any plan of the batch."""
        self.records: dict[bytes, Any] = {}
        self.claims: dict[tuple[str, bytes], bytes | None] = {}
        self.stale: set[tuple[str, bytes]] = set()
        self.missing: dict[str, set[bytes]] = {}
        self.pins: dict[int, list[Condition]] = {}
        self.cycles: dict[int, NetabaseError] = {}
        self.ancestors: dict[tuple[str, bytes], bytes | None] = {}


class WritePlanner:
    """Plans the writes of one store actor."""

    def __init__(self, actor: StoreActor) -> None:
        self.actor = actor
        self.info: ModelInfo[Any] = actor.info
        self.space = actor.info.space
        self.links_cache = LinkCache(actor.config.cache_size)
        self.claim_kinds = claim_kinds(actor.info)
        self.tracks_old = bool(actor.info.links or self.claim_kinds)
        """Whether a put must see the stored record (to diff links and claims)."""

    # planning

    async def plan(self, requests: list[Request]) -> list[WritePlan]:
        state = _BatchState()
        info = self.info
        needs_old = [
            key
            for r in requests
            if isinstance(r.message, Remove) or self.tracks_old or _conditional(r)
            for key in (
                r.message.keys
                if isinstance(r.message, Remove)
                else [item.key for item in _items(r)]
            )
        ]
        if needs_old:
            keys = list(dict.fromkeys(needs_old))
            _, values = await self.actor.backend.read(self.space, keys)
            state.values.update(zip(keys, values, strict=True))
            state.stored.update(state.values)
        puts = [r for r in requests if isinstance(r.message, Insert)]
        if self.claim_kinds and puts:
            await self._read_claims(puts, state)
        if info.links and puts:
            await self._check_targets(puts, state)
        if info.parent is not None and puts:
            await self._check_cycles(puts, state)
        plans = []
        for request in requests:
            claims = dict(state.claims)
            try:
                if isinstance(request.message, Insert):
                    plans.append(self._plan_put(request, state, claims))
                else:
                    plans.append(await self._plan_remove(request, state))
            except (NetabaseError, ClaimRefusal) as exc:
                state.claims = claims
                plans.append(WritePlan(request, None, error=exc))
        return plans

    def _plan_put(
        self,
        request: Request,
        state: _BatchState,
        claims_before: dict[tuple[str, bytes], bytes | None],
    ) -> WritePlan:
        """Plan one put request; ``claims_before`` are the claim holders its conditions will
        meet (as stored, after the batch's earlier requests)."""
        # A key given twice in one call: the last record wins, as if written one after another
        # (so with if_absent the second would find the first: refused).
        given = _items(request)
        items: list[PutItem] = list({item.key: item for item in given}.values())
        if len(items) < len(given) and _if_absent(request):
            raise _given_twice(self.info, given)
        written_together = {item.key for item in items}
        released = self._released_by(items, state) if self.claim_kinds else {}
        info = self.info
        cycle = state.cycles.get(id(request))
        if cycle is not None:
            raise cycle
        guarded = _guard_of(request) is not None
        ops: list[Op] = []
        expects: list[Condition] = list(state.pins.get(id(request), ()))
        errors: dict[int, Callable[[], BaseException]] = {}
        effects = CacheEffects()
        staged_values: dict[bytes, Stamped] = {}
        reparented = False
        for key, value, record, links in items:
            self._plan_condition(request, key, record, state, expects, errors)
            if self.tracks_old:
                old_value = staged_values.get(key, state.values.get(key))
                expects.append(Expect(self.space, key, old_value))
                old_record = self._old_record(key, old_value, state)
                reparented |= self._plan_links(
                    key,
                    record,
                    links,
                    old_record,
                    old_value,
                    state,
                    written_together,
                    ops,
                    expects,
                    errors,
                )
                self._plan_claims(
                    key, record, old_record, state, claims_before, released, ops, expects, guarded
                )
            ops.append(Put(self.space, key, value, True))
            staged_values[key] = Stamped(value)
            effects.store(info.name, key, value, record)
        for key, value in staged_values.items():
            state.values[key] = value
        for key, _, record, _ in items:
            state.records[key] = record
        if reparented:
            ops.append(revision_op())
            effects.permissions = True
        batch = _guarded(WriteBatch(tuple(ops), tuple(expects)), _guard_of(request), errors)
        return WritePlan(request, batch, None, effects=effects, errors=errors)

    def _plan_condition(
        self,
        request: Request,
        key: bytes,
        record: Any,
        state: _BatchState,
        expects: list[Condition],
        errors: dict[int, Callable[[], BaseException]],
    ) -> None:
        """The condition ``if_absent`` / ``if_version`` puts on one key: refused at once when
        the stored value already fails it, else carried to the backend (a write between this
        read and the apply: `AlreadyExists`, or for a version a new plan, which then fails)."""
        message = request.message
        assert isinstance(message, Insert)
        name = self.info.name
        stored = state.stored.get(key)
        if message.if_absent:
            current = state.values.get(key)
            if current is not None and not isinstance(current, Stamped):  # as stored, kept
                raise AlreadyExists(name, self.info.key_of(record))
            expects.append(Expect(self.space, key, None))
            errors[len(expects) - 1] = _exists(name, self.info.key_of(record))
        elif message.if_version is not None:
            actual = record_version(stored)
            if actual != message.if_version:
                raise WriteConflict(
                    name,
                    1,
                    key=self.info.key_of(record),
                    expected=message.if_version,
                    actual=actual,
                )
            expects.append(Expect(self.space, key, stored))

    def _plan_links(
        self,
        key: bytes,
        record: Any,
        links: tuple[tuple[bytes, ...], ...],
        old_record: Any,
        old_value: bytes | None,
        state: _BatchState,
        written_together: set[bytes],
        ops: list[Op],
        expects: list[Condition],
        errors: dict[int, Callable[[], BaseException]],
    ) -> bool:
        """Add the link bookkeeping of one record; True if it moved to another parent.

        Every target gets an "exists" condition, except one written by this same call (its
        batch creates it atomically). A target merely seen in this actor batch, read for a
        removal or put by another request that may yet fail, still needs the condition.
        """
        info = self.info
        old_links = info.stored_links(old_record)
        reparented = False
        for index, link in enumerate(info.links):
            new = links[index]
            old = old_links[index] if old_links else ()
            if link is info.parent and old_value is not None and set(new) != set(old):
                reparented = True
            target = link.target
            missing = state.missing.get(target.name, set())
            for target_key in new:
                if target_key in old:
                    continue
                if target_key in missing:
                    raise _missing(info, record, link, target_key)
                entry = ref_key(target_key, info.name, link.field, key)
                ops.append(Put(target.ref_space, entry, ref_value(info.name, link.field, key)))
                if not (target is info and target_key in written_together):
                    expects.append(Expect(target.space, target_key, EXISTS))
                    errors[len(expects) - 1] = _missing_later(info, record, link, target_key)
            for target_key in old:
                if target_key not in new:
                    entry = ref_key(target_key, info.name, link.field, key)
                    ops.append(Delete(target.ref_space, entry))
        return reparented

    def _released_by(
        self, items: list[PutItem], state: _BatchState
    ) -> dict[tuple[str, bytes], bytes]:
        """Claims that records of one call give up, by value: another record of the same call
        may take them (a call is judged on its end state, so two records can swap values)."""
        released: dict[tuple[str, bytes], bytes] = {}
        for key, _, record, _ in items:
            old_record = self._old_record(key, state.values.get(key), state)
            if old_record is None:
                continue
            for kind in self.claim_kinds:
                new = kind.values_of(record)
                for value in kind.values_of(old_record):
                    if value not in new:
                        released[(kind.space, value)] = key
        return released

    def _plan_claims(
        self,
        key: bytes,
        record: Any,
        old_record: Any,
        state: _BatchState,
        claims_before: dict[tuple[str, bytes], bytes | None],
        released: dict[tuple[str, bytes], bytes],
        ops: list[Op],
        expects: list[Condition],
        guarded: bool,
    ) -> None:
        """Take the unique values the record now holds; release those it no longer holds (a
        value held by another record refuses the write; `ClaimRefusal` for the enforced view)."""
        for kind in self.claim_kinds:
            new = kind.values_of(record)
            old = kind.values_of(old_record) if old_record is not None else ()
            for value in new:
                if value in old:
                    continue
                entry = (kind.space, value)
                holder = state.claims.get(entry)
                free = holder is None or holder == key or entry in state.stale
                if not free and released.get(entry) != holder:
                    assert holder is not None
                    if guarded:
                        raise ClaimRefusal(kind, record, value, holder)
                    raise kind.violation(record, value, holder)
                # Conditions are checked before the call's own writes: expect the stored holder.
                expects.append(Expect(kind.space, value, claims_before.get(entry)))
                ops.append(Put(kind.space, value, key))
                state.claims[entry] = key
                state.stale.discard(entry)
            for value in old:
                entry = (kind.space, value)
                if value not in new and state.claims.get(entry, key) == key:
                    ops.append(Delete(kind.space, value))
                    state.claims[entry] = None

    def _old_record(self, key: bytes, old_value: bytes | None, state: _BatchState) -> Any:
        """The record a write replaces (None if absent or undecodable: its index entries and
        claims, if any, are cleaned up as stale when met)."""
        if old_value is None:
            return None
        record = state.records.get(key)
        if record is None:
            try:
                record = self.info.codec.decode(old_value, key)
            except CorruptRecord:
                return None
        return record

    async def _read_claims(self, puts: list[Request], state: _BatchState) -> None:
        """Read who holds each unique value the batch wants, and whether that claim is stale."""
        for kind in self.claim_kinds:
            wanted = list(
                dict.fromkeys(
                    value
                    for r in puts
                    for item in _items(r)
                    for value in kind.values_of(item.record)
                )
            )
            if not wanted:
                continue
            _, holders = await self.actor.backend.read(kind.space, wanted)
            pairs = list(zip(wanted, holders, strict=True))
            state.claims.update({(kind.space, value): holder for value, holder in pairs})
            held = {value: holder for value, holder in pairs if holder is not None}
            owners = list(dict.fromkeys(held.values()))
            if not owners:
                continue
            _, stored = await self.actor.backend.read(self.space, owners)
            records = dict(zip(owners, stored, strict=True))
            for value, holder in held.items():
                raw = records[holder]
                current = None if raw is None else _decoded(self.info, holder, raw)
                if current is None or value not in kind.values_of(current):
                    state.stale.add((kind.space, value))

    async def _check_targets(self, puts: list[Request], state: _BatchState) -> None:
        """Ask each target store's query lane which named targets exist (one request each)."""
        asked: dict[str, set[bytes]] = {}
        cache = self.links_cache
        created = {item.key for request in puts for item in _items(request)}
        for index, link in enumerate(self.info.links):
            name = link.target.name
            for request in puts:
                for item in _items(request):
                    for target_key in item.links[index]:
                        own = link.target is self.info
                        if own and (target_key in created or target_key in state.values):
                            continue
                        if not cache.knows(name, target_key):
                            asked.setdefault(name, set()).add(target_key)
        for name, keys in asked.items():
            ordered = list(keys)
            generation = cache.generation.get(name, 0)
            answers = await self.actor.ask(name, Exists(ordered))
            present = [key for key, exists in zip(ordered, answers, strict=True) if exists]
            cache.remember(name, present, generation)
            state.missing[name] = {
                key for key, exists in zip(ordered, answers, strict=True) if not exists
            }

    async def _check_cycles(self, puts: list[Request], state: _BatchState) -> None:
        """Refuse a parent link that would make the hierarchy a cycle.

        Only a record that already exists under another parent, or whose new parent is written
        in the same batch, can close a cycle (a new key has no descendants). The walk goes up
        from the new parent through staged and stored records; stored ones it read become
        conditions of the write, so a concurrent move elsewhere makes it re-plan.
        """
        info = self.info
        assert info.parent is not None
        index = info.links.index(info.parent)
        staged = {item.key: item.record for r in puts for item in _items(r)}
        for request in puts:
            for key, _, record, links in _items(request):
                parents = links[index]
                if not parents:
                    continue
                old = info.stored_links(self._old_record(key, state.values.get(key), state))
                moved = old is not None and set(old[index]) != set(parents)
                if not (moved or (info.parent.target is info and parents[0] in staged)):
                    continue
                error = await self._walk_up(key, record, parents[0], staged, state, request)
                if error is not None:
                    state.cycles[id(request)] = error

    async def _walk_up(
        self,
        key: bytes,
        record: Any,
        parent: bytes,
        staged: dict[bytes, Any],
        state: _BatchState,
        request: Request,
    ) -> NetabaseError | None:
        info = self.info
        assert info.parent is not None
        model: ModelInfo[Any] = info.parent.target
        current = parent
        visited: set[tuple[str, bytes]] = set()
        while (model.name, current) not in visited:
            if model is info and current == key:
                return HierarchyCycle(
                    info.name,
                    f"parent {info.parent.target.decode_key(parent)!r} is this record or one of "
                    "its descendants; a hierarchy cannot be a cycle",
                    field=info.parent.field,
                    key=info.key_of(record),
                )
            visited.add((model.name, current))
            if model is info and current in staged:
                above = staged[current]
            else:
                if (model.name, current) not in state.ancestors:
                    _, (raw,) = await self.actor.backend.read(model.space, [current])
                    state.ancestors[(model.name, current)] = raw
                raw = state.ancestors[(model.name, current)]
                state.pins.setdefault(id(request), []).append(Expect(model.space, current, raw))
                above = None if raw is None else _decoded(model, current, raw)
            if above is None or model.parent is None:
                return None
            keys = model.parent.encoded_keys_of(above)
            if not keys:
                return None
            model, current = model.parent.target, keys[0]
        return None

    async def _plan_remove(self, request: Request, state: _BatchState) -> WritePlan:
        message = request.message
        assert isinstance(message, Remove)
        keys, many, guard = message.keys, message.many, message.guard
        present = [key for key in dict.fromkeys(keys) if state.values.get(key) is not None]
        reply: Any = len(present) if many else bool(present)
        if not present:
            return WritePlan(request, None, reply)
        actor = self.actor
        removal = await plan_removal(actor.schema, actor.backend, self.info, present, state.values)
        if removal.violation is not None:
            refused = removal.refusal if guard is not None else None
            return WritePlan(request, None, error=refused or removal.violation)
        assert removal.batch is not None
        if guard is not None and guard.touches is not None and removal.touched - guard.touches:
            # It would delete or rewrite a record the enforced view did not judge.
            return WritePlan(request, None, error=Rejudge())
        for key in present:
            state.values[key] = None
            state.records.pop(key, None)
        errors: dict[int, Callable[[], BaseException]] = {}
        batch = _guarded(removal.batch, guard, errors)
        return WritePlan(request, batch, reply, effects=removal.effects, errors=errors)

    # after the apply

    def applied(self, plan: WritePlan, versions: Mapping[str, tuple[int, int]]) -> None:
        if plan.effects is not None:
            plan.effects.apply(self.actor.caches, versions)


def _given_twice(info: ModelInfo[Any], items: Sequence[PutItem]) -> AlreadyExists:
    """The refusal of an ``if_absent`` call that names the first repeated key twice."""
    seen: set[bytes] = set()
    for item in items:
        if item.key in seen:
            return AlreadyExists(info.name, info.key_of(item.record), twice=True)
        seen.add(item.key)
    raise AssertionError("no key is given twice")


def _if_absent(request: Request) -> bool:
    message = request.message
    return isinstance(message, Insert) and message.if_absent


def _conditional(request: Request) -> bool:
    message = request.message
    return isinstance(message, Insert) and (message.if_absent or message.if_version is not None)


def _exists(model: str, key: object) -> Callable[[], BaseException]:
    return lambda: AlreadyExists(model, key)


def _decoded(model: ModelInfo[Any], key: bytes, raw: bytes) -> Any:
    try:
        return model.codec.decode(raw, key)
    except CorruptRecord:
        return None


def _missing(info: ModelInfo[Any], record: Any, link: LinkInfo, target_key: bytes) -> LinkViolation:
    missing = link.target.decode_key(target_key)
    return LinkViolation(
        info.name,
        info.key_of(record),
        f"links to {link.target.name} key {missing!r}, which does not exist",
        field=link.field,
        missing=(missing,),
    )


def _missing_later(
    info: ModelInfo[Any], record: Any, link: LinkInfo, target_key: bytes
) -> Callable[[], BaseException]:
    return lambda: _missing(info, record, link, target_key)
