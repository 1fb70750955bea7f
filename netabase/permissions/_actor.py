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

Every cache (decisions, group expansions, parent chains, grants per object in `ProofEngine`;
listings in `Listings`) belongs to one revision. A change made in this process clears them
synchronously before it is acknowledged; a change made by another process is noticed at the
next check batch, which reads the token first. Nothing expires on a timer, so nothing is served
stale. Parent chains are resolved by asking the store actors' query lanes (which never wait on
anyone: no deadlock), level by level, batched. The actor only dispatches: proofs are
`_proofs.py`'s, listings `_listings.py`'s, write planning `_writes.py`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from .._errors import NetabaseError
from .._roles import Roles
from .._schema import Schema
from ..actors._actor import BatchingActor, in_rounds
from ..actors._config import RuntimeConfig
from ..actors._mailbox import Mailbox, Request
from ..actors._messages import PERMISSION_WRITES, Check, Explain, Judge, ListObjects, Message
from ..actors._stats import ActorStats
from ..backends import Backend, WriteBatch
from ._listings import Listings
from ._proofs import Ask, ProofEngine
from ._writes import WritePlanner, apply_batches


class PermissionActor:
    """Serves checks, explanations, listings and permission writes; see the module docstring."""

    name = "~permissions"

    def __init__(
        self,
        backend: Backend,
        schema: Schema,
        roles: Roles,
        config: RuntimeConfig,
        *,
        ask: Ask,
        on_drained: Callable[[str], None],
    ) -> None:
        self.backend = backend
        self.schema = schema
        self.on_drained = on_drained
        self.roles = roles
        self.config = config
        self.engine = ProofEngine(backend, schema, roles, ask=ask, cache_size=config.cache_size)
        self.listings = Listings(backend, schema, self.engine)
        self.planner = WritePlanner(backend)
        self.mailbox = Mailbox("permissions", config.mailbox_size)
        self.lane = BatchingActor(self.name, self.mailbox, config.max_batch, self._serve_batch)
        self._stale = False

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
        self.engine.reset()
        self.listings.reset()

    def statistics(self) -> ActorStats:
        """The lane's counters; the cache figures are the decision cache's."""
        engine = self.engine
        return self.lane.statistics(
            cache_size=len(engine.decisions), cache_hits=engine.hits, cache_misses=engine.misses
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
        if await self.engine.sync():
            self._reset_listings()
        checks = [r.message for r in requests if isinstance(r.message, Check)]
        queries = [q for check in checks for q in check.queries]
        decided = await self.engine.decide(queries) if queries else {}
        for request in requests:
            message = request.message
            if isinstance(message, Check):  # decided together, above
                request.reply([decided[q] for q in message.queries])
                continue
            try:  # whatever one judgement, explain or listing raises fails it, not the actor
                request.reply(await self._answer(message))
            except Exception as exc:
                request.fail(exc)

    def _reset_listings(self) -> None:
        """The revision moved and the engine forgot its caches: the listings go too."""
        self._stale = False
        self.listings.reset()

    async def _answer(self, message: Message) -> Any:
        match message:
            case Judge():
                # The grants token read at this batch's start, and the stored chains judged
                # on: every answer holds while they stand.
                answers, chains = await self.engine.judge(list(message.items))
                return (answers, self.engine.grants, chains)
            case Explain():
                return await self.engine.explain(message.query)
            case ListObjects():
                return await self.listings.page(
                    message.principal, message.action, message.model, message.after, message.limit
                )
        raise TypeError(f"the permission actor does not serve {type(message).__name__}")

    # -- writes ------------------------------------------------------------------------------

    async def _write_round(self, pending: list[Request]) -> list[Request]:
        """Plan, apply and answer ``pending``; return those to plan again."""
        plans: list[tuple[Request, WriteBatch, Any]] = []
        for request in pending:
            try:
                batch, reply = await self.planner.plan(request.message)
            except NetabaseError as exc:
                request.fail(exc)
                continue
            plans.append((request, batch, reply))
        if not plans:
            return []
        try:
            outcomes = await apply_batches(self.backend, [batch for _, batch, _ in plans])
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
