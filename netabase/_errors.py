"""The netabase exception hierarchy.

Every error carries the model, key or field it is about as attributes, and names them in its
message, so a log line alone says what went wrong and where.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _fmt_key(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 80 else text[:77] + "..."


class NetabaseError(Exception):
    """Base class of every error netabase raises on purpose."""


class ModelDefinitionError(NetabaseError, TypeError):
    """A model declaration is wrong; raised when the class is decorated, never later."""

    def __init__(self, model: str, problem: str, *, field: str | None = None) -> None:
        self.model = model
        self.field = field
        self.problem = problem
        where = f"{model}.{field}" if field else model
        super().__init__(f"invalid netabase model {where}: {problem}")


class UnknownModel(NetabaseError, LookupError):
    """A model (class or name) that this database was not opened with."""

    def __init__(self, model: str, known: Iterable[str] = ()) -> None:
        self.model = model
        self.known = tuple(sorted(known))
        hint = f"; registered models: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"model {model!r} is not registered with this database{hint}")


class InvalidURL(NetabaseError, ValueError):
    """A database URL that cannot be parsed or names an unknown scheme."""

    def __init__(self, url: str, problem: str) -> None:
        from .backends._url import redact_url  # that module raises this class: import late

        url = redact_url(url)
        self.url = url
        super().__init__(f"invalid netabase URL {url!r}: {problem}")


class ValidationError(NetabaseError, ValueError):
    """A record or key that does not fit its model; nothing was written."""

    def __init__(
        self,
        model: str,
        problem: str,
        *,
        field: str | None = None,
        key: object = None,
        rule: str | None = None,
    ) -> None:
        self.model = model
        self.field = field
        self.key = key
        self.rule = rule
        self.problem = problem
        where = f"{model}.{field}" if field else model
        at = f" (key {_fmt_key(key)})" if key is not None else ""
        by = f" [rule {rule}]" if rule else ""
        super().__init__(f"{where}{at}: {problem}{by}")


class KeyTooLarge(ValidationError):
    """An encoded key longer than the limit every backend shares (LMDB's 511 bytes)."""

    def __init__(self, model: str, key: object, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            model,
            f"key encodes to {size} bytes, over the {limit}-byte limit shared by all backends",
            key=key,
        )


class HierarchyCycle(ValidationError):
    """A parent link or group membership that would make the hierarchy a cycle."""


class CorruptRecord(NetabaseError):
    """Stored bytes that do not decode as the model; other records are unaffected."""

    def __init__(self, model: str, key: object, problem: str) -> None:
        self.model = model
        self.key = key
        self.problem = problem
        super().__init__(f"corrupt stored record {model} key {_fmt_key(key)}: {problem}")


class SchemaMismatch(NetabaseError):
    """The models a database was opened with differ incompatibly from the ones it stores."""

    def __init__(self, differences: dict[str, tuple[str, ...]], resolution: str) -> None:
        self.differences = differences
        """Model name -> each difference, with the declaration that would resolve it."""
        self.model = next(iter(differences))
        self.resolution = resolution
        lines = [f"stored schema of {', '.join(differences)} differs from the declared models:"]
        for model, found in differences.items():
            lines.extend(f"  {model}: {difference}" for difference in found)
        lines.append(resolution)
        super().__init__("\n".join(lines))


class LinkViolation(NetabaseError):
    """A link to a missing record, or a delete refused because records still link here."""

    def __init__(
        self,
        model: str,
        key: object,
        problem: str,
        *,
        field: str | None = None,
        missing: tuple[object, ...] = (),
        referrers: tuple[tuple[str, str, object], ...] = (),
    ) -> None:
        self.model = model
        self.key = key
        self.field = field
        self.missing = missing
        self.referrers = referrers
        where = f"{model}.{field}" if field else model
        super().__init__(f"{where} key {_fmt_key(key)}: {problem}")


class PermissionDenied(NetabaseError):
    """A principal lacks the action on a record."""

    def __init__(self, principal: str, action: str, model: str, key: object) -> None:
        self.principal = principal
        self.action = action
        self.model = model
        self.key = key
        super().__init__(f"principal {principal!r} may not {action!r} {model} key {_fmt_key(key)}")


class UnknownAction(NetabaseError, LookupError):
    """An action or role name that the permission scheme does not define."""

    def __init__(self, name: str, known: Iterable[str], *, model: str | None = None) -> None:
        self.name = name
        self.model = model
        self.known = tuple(known)
        where = f" for {model}" if model else ""
        super().__init__(f"unknown action or role {name!r}{where}; known: {', '.join(self.known)}")


class ConditionError(NetabaseError):
    """A permission condition raised; the check it guarded was denied."""

    def __init__(self, condition: str, model: str, key: object, cause: BaseException) -> None:
        self.condition = condition
        self.model = model
        self.key = key
        self.cause = cause
        super().__init__(
            f"permission condition {condition!r} raised {type(cause).__name__}: {cause} "
            f"while checking {model} key {_fmt_key(key)}; access denied"
        )


class BackendUnavailable(NetabaseError):
    """The storage backend cannot be reached or failed; the request did not complete."""

    def __init__(self, backend: str, problem: str, *, model: str | None = None) -> None:
        from .backends._url import redact_url  # that module imports this one: import late

        backend = redact_url(backend)
        self.backend = backend
        self.model = model
        self.problem = problem
        where = f" serving {model}" if model else ""
        super().__init__(f"backend {backend}{where} unavailable: {problem}")


class RequestTimeout(NetabaseError, TimeoutError):
    """A request missed its deadline; a write is either fully applied or not at all."""

    def __init__(self, model: str, operation: str, timeout: float, key: object = None) -> None:
        self.model = model
        self.operation = operation
        self.timeout = timeout
        self.key = key
        at = f" key {_fmt_key(key)}" if key is not None else ""
        super().__init__(
            f"{model}.{operation}{at} timed out after {timeout:g}s "
            "(a write is either fully applied or not at all)"
        )


class ActorCrashed(NetabaseError):
    """The store actor serving this request crashed; it is being restarted."""

    def __init__(self, model: str, operation: str, cause: BaseException | None = None) -> None:
        self.model = model
        self.operation = operation
        self.cause = cause
        why = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        super().__init__(
            f"actor for {model} crashed while serving {operation}{why} "
            "(a write is either fully applied or not at all)"
        )


class Overloaded(NetabaseError):
    """A non-blocking request found the actor's mailbox full."""

    def __init__(self, model: str, capacity: int) -> None:
        self.model = model
        self.capacity = capacity
        super().__init__(f"mailbox of {model} is full ({capacity} requests waiting)")


class RuntimeFailed(NetabaseError):
    """The supervisor exceeded its restart intensity and shut the runtime down."""

    def __init__(self, model: str, restarts: int, period: float, cause: BaseException) -> None:
        self.model = model
        self.restarts = restarts
        self.period = period
        self.cause = cause
        super().__init__(
            f"actor for {model} crashed more than {restarts} time(s) in {period:g}s "
            f"(last: {type(cause).__name__}: {cause}); the runtime was shut down"
        )


class WriteConflict(NetabaseError):
    """Other writers kept changing the same records, or the record is not at the version the
    write expected (``if_version``, ``update``); the write was not applied."""

    def __init__(
        self,
        model: str,
        attempts: int,
        *,
        key: object = None,
        expected: int | None = None,
        actual: int | None = None,
    ) -> None:
        self.model = model
        self.attempts = attempts
        self.key = key
        self.expected = expected
        self.actual = actual
        if expected is not None:
            message = (
                f"write to {model} key {key!r} not applied: expected version {expected}, "
                f"found {actual}" + (" (absent)" if actual == 0 else "")
            )
        elif key is not None:
            message = (
                f"write to {model} key {key!r} not applied: the record changed under it "
                f"{attempts} times in a row"
            )
        else:
            message = (
                f"write to {model} not applied: the records it depends on changed under it "
                f"{attempts} times in a row (heavy contention from other processes)"
            )
        super().__init__(message)


class AlreadyExists(NetabaseError):
    """``insert(..., if_absent=True)`` found a record under the key; nothing was written."""

    def __init__(self, model: str, key: object, *, twice: bool = False) -> None:
        self.model = model
        self.key = key
        found = "is given twice to one call" if twice else "already exists"
        super().__init__(f"{model} key {key!r} {found}; insert(if_absent=True) wrote nothing")


class Closed(NetabaseError):
    """The database was closed; no further requests are accepted."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"database is closed; cannot serve {model}")


def describe(value: Any) -> str:
    """A short type name for error messages."""
    return type(value).__name__


class TransactionError(NetabaseError):
    """A transaction was used wrongly (nested, used after it ended); nothing was applied."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"transaction: {problem}")


class TransactionConflict(NetabaseError):
    """Something the transaction read changed before it committed; nothing was applied and
    running it again (``db.transact`` does) sees the new state."""

    def __init__(self, model: str | None, key: object = None, *, detail: str = "") -> None:
        self.model = model
        self.key = key
        if model is None:
            what = "a record it read"
        elif key is None:
            what = f"the {model} records it read"
        else:
            what = f"{model} key {_fmt_key(key)}"
        super().__init__(
            f"transaction not applied: {what} changed since it was read{detail}; run it again"
        )


class TransactionTooLarge(NetabaseError):
    """A transaction wrote and read more than ``max_transaction_size`` allows."""

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(
            f"transaction too large: {count} writes and read conditions, more than "
            f"max_transaction_size={limit}; split it or raise the limit in open()"
        )


class TransactionTimeout(NetabaseError, TimeoutError):
    """A transaction ran past ``transaction_timeout``; nothing was applied."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            f"transaction ran longer than transaction_timeout={timeout:g}s and was discarded "
            "(nothing was applied)"
        )
