"""Planning a removal: the record, what links to it (restrict / cascade / set_null), transitively.

The planner walks the reverse index breadth-first from the removed keys: cascade referrers join
the removal, set_null referrers are rewritten without the link, restrict referrers that are not
themselves being removed refuse the whole removal. Every referrer is verified against its stored
record, so an index entry that no longer matches (left behind by a corrupt record) is cleaned up
instead of obeyed. The result is one batch whose conditions pin every value and index prefix the
plan read: the removal and its whole cascade commit atomically or not at all. Cost is
proportional to the referrers visited, never a scan of a store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import _keys
from .._errors import LinkViolation, NetabaseError
from .._keys import prefix_successor
from .._layout import RefEntry, parse_ref, ref_key, ref_prefix, unique_link_space
from .._model import LinkInfo, ModelInfo
from ..backends import Condition, Delete, Expect, ExpectKeys, Op, Put, WriteBatch
from ._claims import claim_kinds
from ._effects import CacheEffects
from ._permission_spaces import revision_op
from ._referrers import decoded_or_none, read_referrers, still_links

if TYPE_CHECKING:
    from .._schema import Schema
    from ..backends import Backend

MAX_LISTED = 10
PROBE = 64
"""Reverse-index entries per record read before a restrict-only removal may be refused."""


class Removal:
    """The outcome of planning: a batch and its effects, or the violation that refuses it."""

    __slots__ = ("batch", "effects", "refusal", "touched", "violation")

    def __init__(
        self,
        batch: WriteBatch | None,
        effects: CacheEffects | None,
        violation: NetabaseError | None = None,
        *,
        refusal: RestrictRefusal | None = None,
        touched: frozenset[tuple[str, bytes]] = frozenset(),
    ) -> None:
        self.batch = batch
        self.effects = effects
        self.violation = violation
        self.refusal = refusal
        """The restrict referrers behind ``violation``, for the enforced view to redact."""
        self.touched = touched
        """(model, key) of every record the batch deletes or rewrites."""


class RestrictRefusal(Exception):
    """A removal refused by restrict referrers, as the enforced view receives it (never shown
    to callers): `redacted` names only the referrers its principal may read."""

    def __init__(self, blocking: list[_Blocker], partial: bool) -> None:
        super().__init__("removal refused by restrict referrers")
        self.blocking = blocking
        self.partial = partial

    def redacted(
        self, readable: set[tuple[str, bytes]], shown: tuple[str, object]
    ) -> LinkViolation:
        """The violation naming the ``readable`` referrers (model, encoded key) and counting
        the others; ``shown`` is the (model, key) it is reported on."""
        listed = [b for b in self.blocking if b.known and (b.source, b.source_key) in readable]
        return _restrict_violation(
            listed,
            self.partial,
            hidden=len(self.blocking) - len(listed),
            unknown={b.source for b in self.blocking if not b.known},
            shown=shown,
        )


async def plan_removal(
    schema: Schema,
    backend: Backend,
    info: ModelInfo[Any],
    keys: list[bytes],
    known: Mapping[bytes, bytes | None],
) -> Removal:
    """Plan removing ``keys`` (present, with stored values in ``known``) of ``info``'s model."""
    walk, refusal = await _walked(schema, backend, info, keys, known, whole=False)
    if refusal is not None:
        violation = _restrict_violation(refusal.blocking, refusal.partial)
        return Removal(None, None, violation, refusal=refusal)
    effects = walk.finish()
    if effects.permissions:
        walk.ops.append(revision_op())
    touched = frozenset(walk.deleted) | frozenset(walk.updates)
    return Removal(WriteBatch(tuple(walk.ops), tuple(walk.expects)), effects, touched=touched)


class Reached(NamedTuple):
    """A record a removal would delete or rewrite, as the planner read it."""

    model: str
    key: bytes
    value: bytes | None
    """Its stored bytes as the plan read them (None: absent)."""
    origin: bytes
    """The removed key it is reached from (its own key, for a removed record)."""


class RemovalPreview(NamedTuple):
    """What removing some keys would do, planned and not written (the answer to
    `PlanRemoval`): what the enforced view judges before it sends the `Remove`."""

    records: tuple[Reached, ...]
    """The removed keys in the order asked (absent ones too), then every record the removal
    would delete by cascade or rewrite by set_null, in the order the walk reached them."""
    refusal: RestrictRefusal | None
    """The restrict referrers that refuse it, as `plan_removal` would refuse it."""


async def preview_removal(
    schema: Schema, backend: Backend, info: ModelInfo[Any], keys: list[bytes]
) -> RemovalPreview:
    """Plan removing ``keys`` of ``info``'s model as `plan_removal` would, without writing: the
    whole walk runs even when the first referrers refuse it, so that every record it would
    touch is known."""
    unique = list(dict.fromkeys(keys))
    _, values = await backend.read(info.space, unique)
    known = dict(zip(unique, values, strict=True))
    records = [Reached(info.name, key, known[key], key) for key in unique]
    present = [key for key in unique if known[key] is not None]
    if not present:
        return RemovalPreview(tuple(records), None)
    walk, refusal = await _walked(schema, backend, info, present, known, whole=True)
    asked = {(info.name, key) for key in unique}
    for obj, origin in walk.origins.items():
        if obj not in asked:
            value = walk.deleted[obj] if obj in walk.deleted else walk.values[obj]
            records.append(Reached(obj[0], obj[1], value, origin))
    return RemovalPreview(tuple(records), refusal)


async def _walked(
    schema: Schema,
    backend: Backend,
    info: ModelInfo[Any],
    keys: list[bytes],
    known: Mapping[bytes, bytes | None],
    *,
    whole: bool,
) -> tuple[_Walk, RestrictRefusal | None]:
    """The walk from ``keys`` (present), and the restrict refusal if one refuses the removal;
    unless ``whole``, a refusal found by `_probe_restricted` leaves the walk unrun."""
    walk = _Walk(schema, backend)
    for key in keys:
        value = known[key]
        assert value is not None
        walk.deleted[(info.name, key)] = value
        walk.origins[(info.name, key)] = key
    probed = await _probe_restricted(schema, backend, info, keys)
    refusal = None if probed is None else RestrictRefusal(*probed)
    if refusal is None or whole:
        await walk.run([(info, key) for key in keys])
    if refusal is None:
        blocking = [b for b in walk.restricted if (b.source, b.source_key) not in walk.deleted]
        if blocking:
            refusal = RestrictRefusal(blocking, False)
    return walk, refusal


def restrict_probes(links: Mapping[tuple[str, str], LinkInfo]) -> dict[str, frozenset[str]]:
    """Per model whose removal a restrict link can refuse at once: the models that removal may
    delete by cascade (a restrict referrer among those might go too, so it refuses nothing).
    Computed once per runtime; a model absent here goes straight to the full walk."""
    probes: dict[str, frozenset[str]] = {}
    for name in {link.target.name for link in links.values()}:
        reach, frontier = {name}, [name]
        while frontier:
            target = frontier.pop()
            for (source, _), link in links.items():
                cascades = link.target.name == target and link.on_delete == "cascade"
                if cascades and source not in reach:
                    reach.add(source)
                    frontier.append(source)
        if any(
            link.target.name == name and link.on_delete == "restrict" and source not in reach
            for (source, _), link in links.items()
        ):
            probes[name] = frozenset(reach)
    return probes


async def _probe_restricted(
    schema: Schema,
    backend: Backend,
    info: ModelInfo[Any],
    keys: list[bytes],
) -> tuple[list[_Blocker], bool] | None:
    """Refuse a removal from the first `PROBE` referrers of each record, when one of them is
    a live restrict referrer that no cascade of this removal can reach.

    A record with many referrers would otherwise have all of them read and decoded just to be
    refused. None means no such referrer was among those read: the full walk then decides;
    else the blocking referrers, and whether there may be more.
    """
    reach = schema.restrict_probes.get(info.name)
    if reach is None:
        return None
    probe = _Walk(schema, backend)
    found: list[tuple[ModelInfo[Any], bytes, RefEntry]] = []
    partial = False
    for key in keys:
        prefix = ref_prefix(key)
        page = await backend.scan(info.ref_space, prefix, prefix_successor(prefix), limit=PROBE)
        found.extend((info, key, parse_ref(index_key, value)) for index_key, value in page)
        partial |= len(page) == PROBE
    if not found:
        return None
    await probe._load_referrers(found)
    for model, key, entry in found:
        probe._follow(model, key, entry)
    blocking = [b for b in probe.restricted if b.source not in reach]
    return (blocking, partial) if blocking else None


class _Blocker(NamedTuple):
    """A referrer whose link forbids the removal (restrict, or a model not open here)."""

    source: str
    field: str
    source_key: bytes
    shown_key: object
    target: ModelInfo[Any]
    target_key: bytes
    known: bool


class _Walk:
    def __init__(self, schema: Schema, backend: Backend) -> None:
        self.schema = schema
        self.backend = backend
        self.ops: list[Op] = []
        self.expects: list[Condition] = []
        self.deleted: dict[tuple[str, bytes], bytes] = {}
        self.values: dict[tuple[str, bytes], bytes | None] = {}
        self.updates: dict[tuple[str, bytes], list[tuple[LinkInfo, bytes]]] = {}
        self.restricted: list[_Blocker] = []
        self.origins: dict[tuple[str, bytes], bytes] = {}
        """The removed key each record deleted or rewritten is first reached from."""
        self.effects = CacheEffects()

    async def run(self, frontier: list[tuple[ModelInfo[Any], bytes]]) -> None:
        while frontier:
            found: list[tuple[ModelInfo[Any], bytes, RefEntry]] = []
            for model, key in frontier:
                # Read even when no model open here links to this one: another process may
                # have models that do, and their referrers must refuse or follow the removal.
                prefix = ref_prefix(key)
                entries = await read_referrers(self.backend, model.ref_space, prefix)
                self.expects.append(
                    ExpectKeys(model.ref_space, prefix, frozenset(e.index_key for e in entries))
                )
                found.extend((model, key, entry) for entry in entries)
            await self._load_referrers(found)
            frontier = []
            for model, key, entry in found:
                step = self._follow(model, key, entry)
                if step is not None:
                    frontier.append(step)

    async def _load_referrers(self, found: list[tuple[ModelInfo[Any], bytes, RefEntry]]) -> None:
        wanted: dict[str, list[bytes]] = {}
        for _, _, entry in found:
            if (entry.source, entry.source_key) not in self.values:
                wanted.setdefault(entry.source, []).append(entry.source_key)
                self.values[(entry.source, entry.source_key)] = None
        for source, keys in wanted.items():
            model = self.schema.models.get(source)
            if model is None:
                continue
            ordered = list(dict.fromkeys(keys))
            _, values = await self.backend.read(model.space, ordered)
            for key, value in zip(ordered, values, strict=True):
                self.values[(source, key)] = value

    def _follow(
        self, target: ModelInfo[Any], target_key: bytes, entry: RefEntry
    ) -> tuple[ModelInfo[Any], bytes] | None:
        schema = self.schema
        source = schema.models.get(entry.source)
        link = schema.link_index.get((entry.source, entry.field))
        if source is None or link is None or link.target is not target:
            self.restricted.append(
                _Blocker(
                    entry.source,
                    entry.field,
                    entry.source_key,
                    _shown(entry.source_key),
                    target,
                    target_key,
                    False,
                )
            )
            return None
        value = self.values.get((entry.source, entry.source_key))
        if value is None or not still_links(source, link, entry.source_key, value, target_key):
            self.ops.append(Delete(target.ref_space, entry.index_key))  # stale entry
            return None
        obj = (source.name, entry.source_key)
        if obj in self.deleted:
            return None
        if link.on_delete in ("cascade", "set_null"):
            origin = self.origins.get((target.name, target_key), target_key)
            self.origins.setdefault(obj, origin)
        if link.on_delete == "cascade":
            self.deleted[obj] = value
            return source, entry.source_key
        if link.on_delete == "set_null":
            self.updates.setdefault(obj, []).append((link, target_key))
            return None
        shown = source.decode_key(entry.source_key)
        self.restricted.append(
            _Blocker(source.name, link.field, entry.source_key, shown, target, target_key, True)
        )
        return None

    def finish(self) -> CacheEffects:
        models = self.schema.models
        hierarchy = self.schema.hierarchy_parents
        for (name, key), old in self.deleted.items():
            if name in hierarchy or models[name].parent is not None:
                self.effects.permissions = True
            model = models[name]
            self.ops.append(Delete(model.space, key))
            self.expects.append(Expect(model.space, key, old))
            self.effects.delete(name, key)
            record = decoded_or_none(model, key, old)
            if record is None:
                continue
            for link, targets in zip(model.links, model.encode_links(record), strict=True):
                for target_key in targets:
                    self._unlink(link, key, target_key)
            for kind in claim_kinds(model):
                if kind.link is None:  # unique links were released by _unlink
                    self.ops.extend(Delete(kind.space, value) for value in kind.values_of(record))
        for (name, key), changes in self.updates.items():
            if (name, key) in self.deleted:
                continue
            model = models[name]
            old_value = self.values[(name, key)]
            assert old_value is not None
            record = model.codec.decode(old_value, key)
            for link, target_key in changes:
                record = link.without(record, link.target.decode_key(target_key))
                self._unlink(link, key, target_key)
                if link is model.parent:
                    self.effects.permissions = True
            new_value = model.codec.encode(record)
            self.ops.append(Put(model.space, key, new_value, True))
            self.expects.append(Expect(model.space, key, old_value))
            self.effects.store(name, key, new_value, record)
        return self.effects

    def _unlink(self, link: LinkInfo, source_key: bytes, target_key: bytes) -> None:
        source = link.source.name
        self.ops.append(
            Delete(link.target.ref_space, ref_key(target_key, source, link.field, source_key))
        )
        if link.unique:
            self.ops.append(Delete(unique_link_space(source, link.field), target_key))


def _restrict_violation(
    blocking: list[_Blocker],
    partial: bool = False,
    *,
    hidden: int = 0,
    unknown: set[str] | None = None,
    shown: tuple[str, object] | None = None,
) -> LinkViolation:
    """The refusal; ``partial`` when only the first referrers were read (there may be more);
    ``hidden`` referrers are counted, not named (those the enforced view's principal may not
    read), and the refusal is reported on ``shown`` instead of the first referrer's target."""
    blocking = sorted(blocking, key=lambda b: (b.source, b.field, b.source_key))
    named = [f"{b.source}.{b.field}={b.shown_key!r}" for b in blocking[:MAX_LISTED]]
    more = f" and {len(blocking) - MAX_LISTED} more" if len(blocking) > MAX_LISTED else ""
    if hidden:
        unreadable = f"{hidden} record{'s' if hidden > 1 else ''} you cannot read"
        more += f" and {unreadable}" if named else unreadable
    if partial:
        more += " and possibly more"
    if unknown is None:
        unknown = {b.source for b in blocking if not b.known}
    hint = (
        f" ({', '.join(sorted(unknown))} not open in this database: its rules are unknown)"
        if unknown
        else ""
    )
    if shown is None:
        first = blocking[0]
        shown = (first.target.name, first.target.decode_key(first.target_key))
    return LinkViolation(
        shown[0],
        shown[1],
        f"cannot remove: still linked by {', '.join(named)}{more} (on_delete=restrict){hint}",
        referrers=tuple((b.source, b.field, b.shown_key) for b in blocking),
    )


def _shown(encoded_key: bytes) -> object:
    """A key of a model not open here, decoded from its self-describing encoding if possible."""
    try:
        parts = _keys.decode_tuple(encoded_key)
    except ValueError:
        return encoded_key
    return parts[0] if len(parts) == 1 else parts
