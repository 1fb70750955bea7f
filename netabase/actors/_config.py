"""Runtime settings, validated once when a database is opened."""

from __future__ import annotations

from typing import Any, Literal

import attrs

Strategy = Literal["one_for_one", "one_for_all"]


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


@attrs.frozen
class RuntimeConfig:
    """How the actors behave; every field has a production default."""

    cache_size: int = attrs.field(default=10_000, validator=_non_negative)
    """Decoded records each store keeps (LRU); 0 disables the cache."""
    mailbox_size: int = attrs.field(default=1024, validator=_positive)
    """Requests that may wait for an actor before callers wait (or fail, if non-blocking)."""
    max_batch: int = attrs.field(default=512, validator=_positive)
    """Most requests an actor serves in one backend round."""
    request_timeout: float = attrs.field(default=5.0, validator=_positive)
    """Deadline of every request, in seconds (RequestTimeout after it)."""
    strategy: Strategy = attrs.field(
        default="one_for_one", validator=attrs.validators.in_(("one_for_one", "one_for_all"))
    )
    """Restart only the crashed actor, or every actor (OTP's strategies)."""
    max_restarts: int = attrs.field(default=1, validator=_non_negative)
    restart_period: float = attrs.field(default=5.0, validator=_positive)
    """More than ``max_restarts`` crashes within ``restart_period`` seconds fail the runtime."""
