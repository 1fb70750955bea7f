"""The store actor: one per model, owning that model's keyspace and cache.

An actor runs two lanes in its own nursery:

* the **main lane** drains its mailbox and serves each drained batch in one backend round: reads
  from the cache, misses in one ``read``; writes planned against the current stored values and
  applied in one ``apply`` (one LMDB transaction / one Redis script), then written through to the
  cache and answered;
* the **query lane** answers other actors (link existence, record peeks) from the cache and the
  backend only. It never sends a request to another actor.

Deadlock rule: only main lanes wait for other actors, and they wait only for query lanes, which
wait for nobody. The wait-for graph therefore has no cycle, whatever links the models declare.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from .._codec import record_version
from .._errors import CorruptRecord, NetabaseError
from .._model import ModelInfo
from .._schema import Schema
from ..backends import Backend
from ._actor import BatchingActor, in_rounds
from ._cache import RecordCache
from ._caches import CacheCoordinator
from ._cascade import RemovalPreview, preview_removal
from ._config import RuntimeConfig
from ._links import Referrer
from ._mailbox import Mailbox, Request
from ._messages import (
    READS,
    WRITES,
    Contains,
    Count,
    Exists,
    Get,
    GetMany,
    GetVersioned,
    Message,
    Peek,
    PlanRemoval,
    Referrers,
    Scan,
)
from ._referrers import verified_referrers
from ._stats import ActorStats
from ._writes import WritePlanner

Ask = Callable[[str, Exists | Peek], Awaitable[Any]]
FaultHook = Callable[[str, Sequence[Request]], None]


class StoreActor:
    """Serves one model's requests; see the module docstring for the lanes."""

    def __init__(
        self,
        info: ModelInfo[Any],
        backend: Backend,
        schema: Schema,
        config: RuntimeConfig,
        *,
        ask: Ask,
        caches: CacheCoordinator,
        on_drained: Callable[[str], None],
    ) -> None:
        self.info = info
        self.name = info.name
        self.backend = backend
        self.schema = schema
        self.config = config
        self.ask = ask
        """Sends to another store's query lane (which waits for nobody: no deadlock)."""
        self.caches = caches
        self.on_drained = on_drained
        self.mailbox = Mailbox(info.name, config.mailbox_size)
        self.queries = Mailbox(f"{info.name} (link queries)", config.mailbox_size, name=info.name)
        self.main = BatchingActor(info.name, self.mailbox, config.max_batch, self._serve_batch)
        self.lookups = BatchingActor(info.name, self.queries, config.max_batch, self._serve_queries)
        self.cache = RecordCache(config.cache_size)
        self.planner = WritePlanner(self)
        self.fault_hook: FaultHook | None = None
        self.decode_cached = not info.frozen

    # -- lifecycle (driven by the supervisor) ------------------------------------------------

    async def run(self) -> None:
        """Serve until both mailboxes are closed and drained; raise if the actor crashes."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.lookups.run)
            await self.main.run()
            self.on_drained(self.name)

    def take_inflight(self) -> list[Request]:
        """Requests the crashed incarnation had taken and not answered (for `ActorCrashed`)."""
        return [*self.main.take_inflight(), *self.lookups.take_inflight()]

    def reset(self) -> None:
        """Start the next incarnation as new: empty cache, fresh link-validation cache."""
        self.cache = RecordCache(self.config.cache_size)
        self.planner = WritePlanner(self)
        self.main.restarted()

    def statistics(self) -> ActorStats:
        """The main lane's counters and the record cache's (query lanes serve other actors)."""
        cache = self.cache
        return self.main.statistics(
            cache_size=len(cache), cache_hits=cache.hits, cache_misses=cache.misses
        )

    def _fault(self, point: str, batch: Sequence[Request]) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point, batch)

    # -- main lane ---------------------------------------------------------------------------

    async def _serve_batch(self, live: list[Request]) -> None:
        """Reads together (one backend read), then writes together (one apply), then the
        others one by one, each by the handler `_ALONE` names for its message type."""
        self._fault("batch", live)
        reads: list[Request] = []
        writes: list[Request] = []
        versioned: list[Request] = []
        alone: list[Request] = []
        for request in live:
            kind = type(request.message)
            if kind is GetVersioned:
                versioned.append(request)
            else:
                (reads if kind in READS else writes if kind in WRITES else alone).append(request)
        if reads:
            await self._serve_reads(reads)
        if versioned:
            await self._serve_versioned(versioned)
        if writes:
            # A write that started is finished even if the runtime is shutting down.
            with trio.CancelScope(shield=True):
                await in_rounds(writes, self._write_round, self.name)
        for request in alone:
            serve = _ALONE.get(type(request.message))
            if serve is None:
                request.fail(TypeError(f"{self.name}: no main-lane handler for {request.message}"))
                continue
            try:
                request.reply(await serve(self, request.message))
            except Exception as exc:  # whatever this one request caused fails it, not the actor
                request.fail(exc)

    # reads

    async def _serve_reads(self, requests: list[Request]) -> None:
        keys = [key for request in requests for key in _read_keys(request.message)]
        try:
            found = await self.load(keys)
        except NetabaseError as exc:  # e.g. BackendUnavailable: these callers, not the actor
            for request in requests:
                request.fail(exc)
            return
        value = _value if not self.decode_cached else _Unshared()
        for request in requests:
            message = request.message
            try:
                request.reply(_READ_ANSWERS[type(message)](message, found, value))
            except NetabaseError as exc:
                request.fail(exc)

    async def _serve_versioned(self, requests: list[Request]) -> None:
        """(record, version) of each key, in one backend read (None, 0 when absent)."""
        keys = [_versioned_key(request) for request in requests]
        try:
            _, values = await self.backend.read(self.info.space, list(dict.fromkeys(keys)))
        except NetabaseError as exc:
            for request in requests:
                request.fail(exc)
            return
        found = dict(zip(dict.fromkeys(keys), values, strict=True))
        for request, key in zip(requests, keys, strict=True):
            raw = found[key]
            if raw is None:
                request.reply((None, 0))
                continue
            record = self.info.decode_or_error(key, raw)
            if isinstance(record, CorruptRecord):
                request.fail(record)
            else:
                request.reply((record, record_version(raw)))

    async def load(self, keys: list[bytes], *, fill: bool = True) -> dict[bytes, Any]:
        """Records for ``keys`` (None if absent, `CorruptRecord` if undecodable), cache first.

        The space's version comes back with every read, so entries another process has since
        overwritten are never served; nor are hits taken before the cache changed under the read
        (another actor's cascade may have discarded them and moved the cache's version on).
        """
        cache = self.cache
        found: dict[bytes, Any] = {}
        misses: list[bytes] = []
        for key in keys:
            if key in found:
                continue
            entry = cache.lookup(key)
            if entry is None:
                misses.append(key)
                found[key] = None
            else:
                found[key] = self._from_cache(key, entry)
        hits = len(found) - len(misses)
        if not found:
            return found
        generation = cache.generation
        version, values = await self.backend.read(self.info.space, misses)
        untouched = cache.generation == generation
        current = cache.validate(version)
        if hits and not (current and untouched):
            # Someone else wrote this space since the cache was filled, or the cache changed
            # while the read was away: trust no hit taken before it.
            misses = list(found)
            generation = cache.generation
            version, values = await self.backend.read(self.info.space, misses)
            untouched = cache.generation == generation
        fill = fill and untouched and cache.version == version
        for key, raw in zip(misses, values, strict=True):
            if raw is None:
                found[key] = None
                continue
            record = found[key] = self.info.decode_or_error(key, raw)
            if fill and not isinstance(record, CorruptRecord):
                cache.fill(key, raw if self.decode_cached else record)
        return found

    def _from_cache(self, key: bytes, entry: Any) -> Any:
        return self.info.decode_or_error(key, entry) if self.decode_cached else entry

    async def _scan(self, scan: Scan) -> list[tuple[bytes, Any]]:
        pairs = await self.backend.scan(
            self.info.space, scan.lo, scan.hi, limit=scan.limit, reverse=scan.reverse
        )
        return [(key, self.info.decode_or_error(key, raw)) for key, raw in pairs]

    async def _count(self, _: Count) -> int:
        return await self.backend.count(self.info.space)

    async def _referrers(self, message: Referrers) -> list[Referrer]:
        found = await verified_referrers(self.schema, self.backend, self.info, message.key)
        return [Referrer(*entry) for entry in found]

    async def _plan_removal(self, message: PlanRemoval) -> RemovalPreview:
        return await preview_removal(self.schema, self.backend, self.info, [*message.keys])

    # writes

    async def _write_round(self, pending: list[Request]) -> list[Request]:
        """Plan, apply and answer ``pending``; return those to plan again."""
        try:
            plans = await self.planner.plan(pending)
        except NetabaseError as exc:  # e.g. the backend went away while reading
            for request in pending:
                request.fail(exc)
            return []
        ready = [plan for plan in plans if plan.batch is not None]
        self._fault("commit", pending)
        try:
            result = await self.backend.apply([plan.batch for plan in ready])  # type: ignore[misc]
        except NetabaseError as exc:
            for plan in plans:
                plan.request.fail(exc)
            return []
        self._fault("committed", pending)
        own = result.versions.get(self.info.space)
        if own is not None:
            self.cache.after_write(*own)
        retry: list[Request] = []
        for plan, unmet in zip(ready, result.failed, strict=True):
            if unmet is None:
                self.planner.applied(plan, result.versions)
                plan.request.reply(plan.reply)
                continue
            error = plan.error_for(unmet)
            if error is None:
                retry.append(plan.request)
            else:
                plan.request.fail(error)
        for plan in plans:
            if plan.batch is None:
                plan.finish_without_write()
        return retry

    # -- query lane --------------------------------------------------------------------------

    async def _serve_queries(self, live: list[Request]) -> None:
        asked = [_asked(request) for request in live]
        keys = [key for each in asked for key in each]
        try:
            validate = any(type(request.message) is not Exists for request in live)
            found = await self._peek(keys, validate=validate)
        except NetabaseError as exc:
            for request in live:
                request.fail(exc)
        else:
            for request, wanted in zip(live, asked, strict=True):
                if type(request.message) is Exists:
                    request.reply([key in found for key in wanted])
                else:
                    request.reply([found.get(key) for key in wanted])

    async def _peek(self, keys: list[bytes], *, validate: bool) -> dict[bytes, Any]:
        """Records for other actors; never fills the cache.

        Values are the record, or a `CorruptRecord` for bytes that do not decode; absent keys
        are missing from the result. With ``validate`` cached entries are checked against the
        space's version like `load` does (parent chains need that: another process may have
        re-parented a record). Link existence checks skip it, because every write that relies
        on one also carries an EXISTS condition the backend checks when it applies.
        """
        if validate:
            found = await self.load(keys, fill=False)
            return {key: record for key, record in found.items() if record is not None}
        found = {}
        misses = []
        for key in keys:
            entry = self.cache.lookup(key)
            if entry is None:
                misses.append(key)
            else:
                found[key] = self._from_cache(key, entry)
        if misses:
            _, values = await self.backend.read(self.info.space, misses)
            for key, raw in zip(misses, values, strict=True):
                if raw is not None:
                    found[key] = self.info.decode_or_error(key, raw)
        return found


_ALONE: dict[type[Message], Callable[[StoreActor, Any], Awaitable[Any]]] = {
    Scan: StoreActor._scan,
    Count: StoreActor._count,
    Referrers: StoreActor._referrers,
    PlanRemoval: StoreActor._plan_removal,
}
"""Main-lane messages served one at a time: the handler whose answer is the reply."""

_Value = Callable[[dict[bytes, Any], bytes], Any]

_READ_KEYS: dict[type[Message], Callable[[Any], Sequence[bytes]]] = {
    Get: lambda message: (message.key,),
    Contains: lambda message: (message.key,),
    GetMany: lambda message: message.keys,
}
_READ_ANSWERS: dict[type[Message], Callable[[Any, dict[bytes, Any], _Value], Any]] = {
    Get: lambda message, found, value: value(found, message.key),
    Contains: lambda message, found, _: found.get(message.key) is not None,
    GetMany: lambda message, found, value: [value(found, key) for key in message.keys],
}
"""The keys each read wants, and its reply from the records found (``value`` hands one out)."""


def _read_keys(message: Message) -> Sequence[bytes]:
    return _READ_KEYS[type(message)](message)


def _versioned_key(request: Request) -> bytes:
    message = request.message
    assert isinstance(message, GetVersioned)
    return message.key


def _asked(request: Request) -> Sequence[bytes]:
    message = request.message
    assert isinstance(message, (Exists, Peek))
    return message.keys


def _value(found: dict[bytes, Any], key: bytes) -> Any:
    value = found.get(key)
    if isinstance(value, Exception):
        raise value
    return value


class _Unshared:
    """`_value` for mutable records: each caller, and each position of a ``get_many``, gets its
    own object, so mutating one reply never changes another."""

    def __init__(self) -> None:
        self._handed: set[bytes] = set()

    def __call__(self, found: dict[bytes, Any], key: bytes) -> Any:
        record = _value(found, key)
        if record is None:
            return None
        if key in self._handed:
            return copy.deepcopy(record)
        self._handed.add(key)
        return record
