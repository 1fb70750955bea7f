"""`open`: start a backend and its supervised actors; `Database`: the handle the block gets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import trio

from . import _validate
from ._errors import ValidationError
from ._permissions import Permissions, PrincipalView
from ._roles import Roles
from ._store import Store
from ._transaction import Transaction, transact
from .actors._config import RuntimeConfig, Strategy
from .actors._runtime import Runtime
from .actors._stats import ActorStats
from .actors._supervisor import root_cause
from .backends import Backend, open_backend
from .backends._url import redact_url

T = TypeVar("T")
R = TypeVar("R")


@attrs.frozen
class DatabaseStats:
    """Per-actor statistics of an open database (see `ActorStats`)."""

    url: str
    actors: Mapping[str, ActorStats]

    def __str__(self) -> str:
        lines = [f"netabase {self.url}"]
        lines.append(
            f"  {'actor':<16}{'served':>9}{'batches':>9}{'mean':>7}{'max':>6}"
            f"{'hit%':>7}{'depth':>7}{'p50 µs':>9}{'p99 µs':>9}{'restarts':>9}"
        )
        for name, s in self.actors.items():
            lines.append(
                f"  {name:<16}{s.requests:>9}{s.batches:>9}{s.mean_batch:>7.1f}{s.max_batch:>6}"
                f"{100 * s.cache_hit_ratio:>7.1f}{s.mailbox_depth:>7}"
                f"{1e6 * s.p50_latency:>9.0f}{1e6 * s.p99_latency:>9.0f}{s.restarts:>9}"
            )
        return "\n".join(lines)


class Database:
    """An open netabase database: stores per model, statistics, permissions."""

    url: str
    permissions: Permissions

    def __init__(self, runtime: Runtime, url: str) -> None:
        self._runtime = runtime
        self.url = url
        self.permissions = Permissions(runtime.routes)
        """Grants, group memberships and access checks."""

    def __repr__(self) -> str:
        return f"<netabase.Database {self.url} models={list(self._runtime.models)}>"

    @property
    def backend(self) -> Backend:
        return self._runtime.backend

    @property
    def models(self) -> tuple[type, ...]:
        return tuple(info.cls for info in self._runtime.models.values())

    def store(self, model: type[T]) -> Store[T]:
        """The store of a registered model; `UnknownModel` otherwise."""
        routes = self._runtime.routes
        actor = routes.actor_for(model)
        return Store(routes, actor, actor.info, timeout=routes.request_timeout)

    def as_principal(self, principal: str) -> PrincipalView:
        """The database as ``principal`` sees it: reads need ``read``, writes ``write``."""
        return PrincipalView(self._runtime.routes, principal, self.permissions)

    def transaction(self) -> Transaction:
        """One transaction attempt across every store, used as ``async with``: serializable,
        all-or-nothing, `TransactionConflict` if something it read changed (see `transact`)."""
        return Transaction(self._runtime.routes)

    async def transact(self, fn: Callable[..., Awaitable[R]], *args: Any, retries: int = 10) -> R:
        """``await fn(tx, *args)`` in a transaction, run again on `TransactionConflict` (with
        jittered backoff) at most ``retries`` more times; returns what ``fn`` returned."""
        return await transact(self.transaction, fn, args, retries)

    def stats(self) -> DatabaseStats:
        """A snapshot of every actor's counters; cheap enough to call at any time."""
        return DatabaseStats(self.url, self._runtime.statistics())


@contextlib.asynccontextmanager
async def open_database(
    url: str,
    *,
    models: Iterable[type],
    cache_size: int = 10_000,
    mailbox_size: int = 1024,
    max_batch: int = 512,
    request_timeout: float = 5.0,
    transaction_timeout: float = 10.0,
    max_transaction_size: int = 10_000,
    strategy: Strategy = "one_for_one",
    max_restarts: int = 1,
    restart_period: float = 5.0,
    roles: Mapping[str, Iterable[str]] | Roles | None = None,
) -> AsyncIterator[Database]:
    """Open ``url`` (``memory://``, ``lmdb://PATH``, ``redis://HOST:PORT/DB``) for ``models``.

    ``roles`` maps role names to the actions they allow (default: read < write < admin).
    The block runs with every store actor started under a supervisor. Leaving it drains queued
    requests, commits, stops the actors and closes the backend: no task, thread or connection
    outlives it. If the supervisor gives up (restart intensity exceeded) the block is cancelled
    and `RuntimeFailed` is raised.
    """
    models = list(_validate.collection("open", "models", models))
    config = RuntimeConfig(
        cache_size=cache_size,
        mailbox_size=mailbox_size,
        max_batch=max_batch,
        request_timeout=request_timeout,
        transaction_timeout=transaction_timeout,
        max_transaction_size=max_transaction_size,
        strategy=strategy,
        max_restarts=max_restarts,
        restart_period=restart_period,
    )
    table = _roles(roles)
    backend = open_backend(url)
    runtime = Runtime(backend, models, config, table)
    await runtime.start()
    # The actors are shielded from cancellation of the block: leaving it for any reason
    # (an error, an outer cancel scope) first drains what is queued, then stops them.
    # Not `nursery.start`: a shielded child that calls started() under a cancelled start() is
    # left under start(), which then waits for it for ever.
    actors_scope = trio.CancelScope(shield=True)
    started = trio.Event()

    async def run_actors() -> None:
        with actors_scope:
            async with trio.open_nursery() as actors:
                actors.start_soon(runtime.deadlines.run, name="netabase deadlines")
                actors.start_soon(runtime.leases.run, name="netabase snapshot leases")
                await actors.start(runtime.supervisor.run)
                started.set()

    from_block: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_actors)
            try:
                await started.wait()
            except BaseException:
                actors_scope.cancel()  # cancelled while starting: nothing is queued yet
                raise
            try:
                yield Database(runtime, redact_url(url))  # shown in reprs and statistics
            except BaseException as exc:
                from_block = exc
                raise
            finally:
                await runtime.drain()
                actors_scope.cancel()
    except BaseExceptionGroup as group:
        error = _single(group, from_block, runtime.failure)
        raise error from error.__cause__
    finally:
        runtime.release_stored_schema()
        with trio.CancelScope(shield=True):
            await backend.aclose()


def _roles(roles: object) -> Roles | None:
    if roles is None or isinstance(roles, Roles):
        return roles
    if not isinstance(roles, Mapping):
        raise ValidationError(
            "open", f"must map role names to actions, got {type(roles).__name__}", field="roles"
        )
    try:
        return Roles(roles)
    except (TypeError, ValueError) as exc:
        raise ValidationError("open", str(exc), field="roles") from None


def _single(
    group: BaseExceptionGroup[Any], from_block: BaseException | None, failure: BaseException | None
) -> BaseException:
    """What leaving the block raises: the runtime's failure if it gave up, else the block's own
    exception as it was raised (a group included), else a runtime task's error unwrapped."""
    if failure is not None:
        return failure
    # trio may rebuild a group the block raised (splitting out Cancelled), so compare leaves.
    if from_block is not None and _leaves(group) == _leaves(from_block):
        return from_block
    return root_cause(group)


def _leaves(error: BaseException) -> list[int]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [id(error)]
