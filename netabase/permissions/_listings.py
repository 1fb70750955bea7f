"""Listings: the records of a model a principal may act on, in key order, a page at a time."""

from __future__ import annotations

import bisect

import msgpack

from .._errors import CorruptRecord
from .._keys import encode_str
from .._layout import ref_prefix
from .._schema import Schema
from ..actors._permission_spaces import GRANTS
from ..actors._referrers import read_referrers
from ..backends import Backend
from ..backends._paging import scan_pages
from ._proofs import ProofEngine
from ._queries import Obj, parent_of
from ._scan import scan_prefix


class Listings:
    """Answers `ListObjects`; keeps each listing for the next page while the hierarchy stands."""

    def __init__(self, backend: Backend, schema: Schema, engine: ProofEngine) -> None:
        self.backend = backend
        self.schema = schema
        self.engine = engine
        self.reset()

    def reset(self) -> None:
        """Forget every kept listing; only between computations."""
        self.listings: dict[tuple[str, str, str], tuple[tuple[int, ...], list[bytes]]] = {}

    async def page(
        self, principal: str, action: str, model: str, after: bytes | None, limit: int
    ) -> list[bytes]:
        """Keys of ``model`` that ``principal`` may ``action``, in key order, after a cursor.

        A listing is kept for the next page while no record of the hierarchy changed: new
        records do not move the permission revision, so the spaces' versions are compared too.
        """
        key = (principal, action, model)
        versions = await self.hierarchy_versions(model)
        cached = self.listings.get(key)
        if cached is not None and cached[0] == versions:
            listing = cached[1]
        else:
            listing = await self._compute(principal, action, model)
            if (model, action) not in self.schema.rules:  # conditions read changing records
                self.listings[key] = (versions, listing)
        start = 0 if after is None else bisect.bisect_right(listing, after)
        return listing[start : start + limit]

    async def hierarchy_versions(self, model: str) -> tuple[int, ...]:
        """The versions of ``model``'s space and of every parent model's, in name order."""
        models = self.schema.models
        names = sorted({model} | self.schema.hierarchy_parents)
        versions = []
        for name in names:
            version, _ = await self.backend.read(models[name].space, [])
            versions.append(version)
        return tuple(versions)

    async def _compute(self, principal: str, action: str, model: str) -> list[bytes]:
        expansion = (await self.engine.expand({principal}))[principal]
        roles = self.engine.roles
        granted: set[Obj] = set()
        for holder in expansion:
            rows = await scan_prefix(self.backend, GRANTS, encode_str(holder))
            for _, value in rows:
                granted_model, granted_key, role = msgpack.unpackb(value)
                if roles.allows(role, action) and granted_model in self.schema.models:
                    granted.add((granted_model, granted_key))
        found = {key for m, key in granted if m == model}
        if (model, action) in self.schema.rules:
            return await self._filter_by_rules(principal, action, model, found)
        frontier = [obj for obj in granted if obj[0] in self.schema.hierarchy_parents]
        seen = set(frontier)
        while frontier:
            following = []
            for obj in frontier:
                for child in await self.children(obj):
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
        async for page in scan_pages(self.backend, info.space):
            candidates.update(key for key, _ in page)
        ordered = sorted(candidates)
        decided = await self.engine.prove([(principal, action, model, k, None) for k in ordered])
        return [key for key in ordered if decided[(principal, action, model, key, None)].allowed]

    async def children(self, obj: Obj) -> list[Obj]:
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
            if parent_of(source, record) == obj:
                children.append((source.name, entry.source_key))
        return children
