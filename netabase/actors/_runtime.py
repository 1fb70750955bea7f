"""The runtime: the registry of models and actors, their supervisor, and orderly shutdown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import trio

from .._errors import UnknownModel
from .._key_blocks import KeyBlocks
from .._model import LinkInfo, ModelInfo
from .._roles import Roles
from .._schema import Rules, Schema
from .._stored_schema import reconcile
from ..backends import Backend
from ..permissions._actor import PermissionActor
from ._caches import CacheCoordinator
from ._calls import send
from ._config import RuntimeConfig
from ._deadlines import Deadlines
from ._leases import SnapshotLeases
from ._messages import Exists, Peek
from ._permission_layout import upgrade_permission_layout
from ._routes import Routes
from ._stats import ActorStats
from ._store_actor import StoreActor
from ._supervisor import Supervised, Supervisor


class Runtime:
    """Builds and owns the actors of one open database: it hands each what it uses
    (the `Schema`, the backend, `ask`, the `CacheCoordinator`), routes callers to them
    (`actor_for`, `ask`) and shuts them down (`drain`, `fail`)."""

    def __init__(
        self,
        backend: Backend,
        models: Iterable[type],
        config: RuntimeConfig,
        roles: Roles | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.deadlines = Deadlines()
        self.leases = SnapshotLeases()
        """The open snapshots of transactions, closed at their deadlines."""
        roles = roles or Roles()
        self.schema = Schema.from_models(models, roles)
        """What the models say; the facades read ``models``, ``link_index`` and ``rules``."""
        self.actors: dict[str, StoreActor] = {}
        self.caches = CacheCoordinator(self.actors, self.permissions_changed)
        for name, info in self.models.items():
            self.actors[name] = StoreActor(
                info,
                backend,
                self.schema,
                config,
                ask=self.ask,
                caches=self.caches,
                on_drained=self.main_lane_finished,
            )
        self.key_blocks = {
            name: KeyBlocks(backend, info) for name, info in self.models.items() if info.auto is int
        }
        """Per model with generated int keys, the block its inserts take keys from."""
        self._by_class = {info.cls: self.actors[name] for name, info in self.models.items()}
        self.permission_actor = PermissionActor(
            backend, self.schema, roles, config, ask=self.ask, on_drained=self.main_lane_finished
        )
        self.routes = Routes(
            schema=self.schema,
            backend=backend,
            deadlines=self.deadlines,
            request_timeout=config.request_timeout,
            actor_for=self.actor_for,
            ask=self.ask,
            permissions=self.permission_actor.mailbox,
            roles=roles,
            caches=self.caches,
            leases=self.leases,
            config=config,
            is_closing=lambda: self.closing,
            key_blocks=self.key_blocks,
        )
        """What the facades are given instead of the runtime."""
        self.extra_actors: list[Supervised] = [self.permission_actor]
        self.supervisor = Supervisor(self.all_actors(), config, self.fail)
        self.failure: BaseException | None = None
        self.closing = False
        """Set once the database stops taking requests (closed, or the supervisor gave up)."""
        self._finished: set[str] = set()
        self._main_lanes_done = trio.Event()
        self._may_lack: dict[str, frozenset[str]] = {}

    @property
    def models(self) -> Mapping[str, ModelInfo[Any]]:
        """The registered models by name (`Schema.models`)."""
        return self.schema.models

    @property
    def link_index(self) -> Mapping[tuple[str, str], LinkInfo]:
        """(source model, field) -> the link (`Schema.link_index`)."""
        return self.schema.link_index

    @property
    def rules(self) -> Rules:
        """(model, action) -> allow and require conditions (`Schema.rules`)."""
        return self.schema.rules

    def spaces(self) -> list[str]:
        """Every backend keyspace the registered models use (`Schema.spaces`)."""
        return list(self.schema.spaces)

    async def start(self) -> None:
        """Open the backend's spaces, check the models against the stored schemas
        (`SchemaMismatch` when they differ incompatibly; the backend is closed again), and
        bring permission rows written by an older release to today's layout."""
        await self.backend.start(self.spaces())
        self._may_lack = {}
        try:
            may_lack = await reconcile(self.backend, self.models)
            await upgrade_permission_layout(self.backend)
            for name, info in self.models.items():
                self._may_lack[name] = info.codec.allow_missing(may_lack.get(name, ()))
        except BaseException:
            self.release_stored_schema()
            with trio.CancelScope(shield=True):
                await self.backend.aclose()
            raise

    def release_stored_schema(self) -> None:
        """The database closed: its records' missing fields no longer decode (see `start`)."""
        for name, fields in self._may_lack.items():
            self.models[name].codec.release_missing(fields)
        self._may_lack = {}

    def permissions_changed(self) -> None:
        """A write of this process changed what permission checks may answer."""
        self.permission_actor.invalidate()

    def all_actors(self) -> Sequence[Supervised]:
        return [*self.actors.values(), *self.extra_actors]

    def actor_for(self, model: type | str) -> StoreActor:
        """The actor serving ``model`` (class or name); `UnknownModel` if not registered."""
        if isinstance(model, str):
            actor = self.actors.get(model)
        else:  # an unhashable or non-class argument is simply not a registered model
            actor = self._by_class.get(model) if isinstance(model, type) else None
        if actor is None:
            label = model if isinstance(model, str) else getattr(model, "__name__", repr(model))
            raise UnknownModel(label, self.actors)
        return actor

    async def ask(self, model: str, message: Exists | Peek) -> Any:
        """Ask ``model``'s query lane (never its main lane: see `StoreActor`), with a deadline."""
        mailbox = self.actors[model].queries
        return await send(
            mailbox, message, deadlines=self.deadlines, seconds=self.config.request_timeout
        )

    def statistics(self) -> dict[str, ActorStats]:
        stats = {name: actor.statistics() for name, actor in self.actors.items()}
        stats[self.permission_actor.name] = self.permission_actor.statistics()
        return stats

    # shutdown

    def main_lane_finished(self, name: str) -> None:
        """Actor ``name`` drained its mailbox after `drain`; once all have, close the query
        lanes (kept open until then because draining actors may still ask them)."""
        self._finished.add(name)
        if self._finished >= {each.name for each in self.all_actors()}:
            self._main_lanes_done.set()
            for each in self.actors.values():
                each.queries.close()

    async def drain(self) -> None:
        """Refuse new requests, finish every queued one, then let the actors stop."""
        self.closing = True
        self.leases.release_all()
        for actor in self.actors.values():
            actor.mailbox.close()
        self.permission_actor.mailbox.close()
        with trio.CancelScope(shield=True):
            if self.failure is None:
                await self._main_lanes_done.wait()

    def fail(self, error: BaseException) -> None:
        """The supervisor gave up: answer everything still waiting with ``error``."""
        self.failure = error
        self.closing = True
        mailboxes = [self.permission_actor.mailbox]
        for actor in self.actors.values():
            mailboxes += [actor.mailbox, actor.queries]
        for mailbox in mailboxes:
            mailbox.close(error)
            mailbox.fail_pending(error)
        for each in self.all_actors():
            for request in each.take_inflight():
                request.fail(error)
        self._main_lanes_done.set()
