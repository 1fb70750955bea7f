"""Fault injection into store actors, for testing supervision and crash safety."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .._database import Database
from ..actors._mailbox import Request

FaultPoint = Literal["batch", "commit", "committed"]


class InjectedFault(RuntimeError):
    """The exception an injected fault raises inside an actor."""


def inject_fault(
    db: Database,
    model: type,
    point: FaultPoint,
    *,
    times: int = 1,
    error: BaseException | None = None,
) -> None:
    """Make the actor of ``model`` raise at ``point`` of its next ``times`` batches.

    ``batch``: as a batch starts; ``commit``: just before its writes are applied;
    ``committed``: just after they are durable, before any caller is answered.
    """
    actor = db._runtime.actor_for(model)
    remaining = times

    def hook(where: str, batch: Sequence[Request]) -> None:
        nonlocal remaining
        if where != point or remaining <= 0:
            return
        remaining -= 1
        raise error or InjectedFault(f"injected fault at {point} in {actor.name}")

    actor.fault_hook = hook
