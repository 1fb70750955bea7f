"""The supervisor: runs every actor, restarts crashed ones, gives up past the restart intensity.

Strategies follow OTP: ``one_for_one`` restarts only the actor that crashed, ``one_for_all``
restarts every actor. More than ``max_restarts`` crashes within ``restart_period`` seconds (OTP's
default: 1 in 5 s) means something is persistently wrong: the supervisor stops and the runtime
fails with `RuntimeFailed`. Requests the crashed actor had taken get `ActorCrashed`; requests still
queued in its mailbox are served by the restarted actor.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from .._errors import ActorCrashed, RuntimeFailed
from ._config import RuntimeConfig
from ._mailbox import Request


class Supervised(Protocol):
    """What the supervisor needs of an actor."""

    name: str

    async def run(self) -> None:
        """Serve until closed and drained; raise on a crash."""

    def take_inflight(self) -> list[Request]:
        """The requests the current incarnation took and has not answered (and forget them)."""

    def reset(self) -> None:
        """Prepare a fresh incarnation: empty caches, counted restart."""


def root_cause(error: BaseException) -> BaseException:
    """The single exception inside nested exception groups, or the group itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class Supervisor:
    """Starts, watches and restarts the runtime's actors."""

    def __init__(
        self,
        actors: Sequence[Supervised],
        config: RuntimeConfig,
        give_up: Callable[[BaseException], None],
    ) -> None:
        self.actors = actors
        self.config = config
        self.give_up = give_up
        """Called with `RuntimeFailed` past the restart intensity (the runtime fails)."""
        self._crashes: collections.deque[float] = collections.deque()
        self._scopes: dict[str, trio.CancelScope] = {}
        self._sibling_restart: dict[str, BaseException] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for actor in self.actors:
                nursery.start_soon(self._supervise, actor, name=f"netabase actor {actor.name}")
            task_status.started()

    async def _supervise(self, actor: Supervised) -> None:
        while True:
            scope = trio.CancelScope()
            self._scopes[actor.name] = scope
            try:
                with scope:
                    await actor.run()
            except Exception as exc:
                cause = root_cause(exc)
                self._fail_inflight(actor, cause)
                self._count_crash(actor, cause)
                if self.config.strategy == "one_for_all":
                    self._restart_siblings(actor, cause)
                actor.reset()
                continue
            sibling_cause = self._sibling_restart.pop(actor.name, None)
            if scope.cancelled_caught and sibling_cause is not None:
                self._fail_inflight(actor, sibling_cause)
                actor.reset()
                continue
            return

    def _fail_inflight(self, actor: Supervised, cause: BaseException) -> None:
        for request in actor.take_inflight():
            request.fail(ActorCrashed(actor.name, request.message.operation, cause))

    def _count_crash(self, actor: Supervised, cause: BaseException) -> None:
        now = trio.current_time()
        crashes = self._crashes
        crashes.append(now)
        while crashes and crashes[0] < now - self.config.restart_period:
            crashes.popleft()
        if len(crashes) > self.config.max_restarts:
            error = RuntimeFailed(
                actor.name, self.config.max_restarts, self.config.restart_period, cause
            )
            self.give_up(error)
            raise error from cause

    def _restart_siblings(self, crashed: Supervised, cause: BaseException) -> None:
        for actor in self.actors:
            if actor is crashed:
                continue
            self._sibling_restart[actor.name] = RuntimeError(
                f"one_for_all restart after {crashed.name} crashed: {cause}"
            )
            scope = self._scopes.get(actor.name)
            if scope is not None:
                scope.cancel()
