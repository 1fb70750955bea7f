"""Runtime settings, validated once when a database is opened (`ValidationError` naming the
option)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from .. import _validate
from .._errors import ValidationError

Strategy = Literal["one_for_one", "one_for_all"]


def _positive(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    _validate.integer("open", attribute.name, value, minimum=1)


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    _validate.integer("open", attribute.name, value)


def _seconds(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    _validate.seconds("open", attribute.name, value)


def _strategy(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in ("one_for_one", "one_for_all"):
        raise ValidationError(
            "open",
            f"must be 'one_for_one' or 'one_for_all', got {value!r}",
            field=attribute.name,
        )


@attrs.frozen
class RuntimeConfig:
    """How the actors behave; every field has a production default."""

    cache_size: int = attrs.field(default=10_000, validator=_non_negative)
    """Decoded records each store keeps (LRU); 0 disables the cache."""
    mailbox_size: int = attrs.field(default=1024, validator=_positive)
    """Requests that may wait for an actor before callers wait (or fail, if non-blocking)."""
    max_batch: int = attrs.field(default=512, validator=_positive)
    """Most requests an actor serves in one backend round."""
    request_timeout: float = attrs.field(default=5.0, validator=_seconds)
    """Deadline of every request, in seconds (RequestTimeout after it)."""
    transaction_timeout: float = attrs.field(default=10.0, validator=_seconds)
    """Longest a transaction may run, from its start to its commit (`TransactionTimeout`)."""
    max_transaction_size: int = attrs.field(default=10_000, validator=_positive)
    """Most writes plus read conditions one transaction may carry (`TransactionTooLarge`)."""
    strategy: Strategy = attrs.field(default="one_for_one", validator=_strategy)
    """Restart only the crashed actor, or every actor (OTP's strategies)."""
    max_restarts: int = attrs.field(default=1, validator=_non_negative)
    restart_period: float = attrs.field(default=5.0, validator=_seconds)
    """More than ``max_restarts`` crashes within ``restart_period`` seconds fail the runtime."""
