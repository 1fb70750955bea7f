"""Uniqueness claims: unique links (one holder per target) and unique fields (one record per value).

A claim is an entry ``value -> holder key`` in a space of its own. A write that takes a value
carries the condition "the entry is as I read it", so two writers racing for one value cannot
both win, on any backend. A claim whose holder no longer holds the value (left behind by a
corrupt record) is recognised as stale and taken over instead of blocking the value forever.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

from .._errors import LinkViolation, NetabaseError, ValidationError
from .._layout import unique_field_space, unique_link_space
from .._model import LinkInfo, ModelInfo


class ClaimKind(NamedTuple):
    """One unique link or unique field of a model."""

    space: str
    field: str
    values_of: Callable[[Any], tuple[bytes, ...]]
    violation: Callable[[Any, bytes, bytes | None], NetabaseError]
    """(record, claimed value, holder key) -> the error for a value already held (holder None:
    held by a record the enforced view's principal may not read, so left unnamed)."""
    link: LinkInfo | None
    """The unique link this claim belongs to; None for a unique field."""


@functools.cache
def claim_kinds(info: ModelInfo[Any]) -> tuple[ClaimKind, ...]:
    kinds = []
    for link in info.links:
        if link.unique:

            def link_violation(
                record: Any, value: bytes, holder: bytes | None, link: Any = link
            ) -> NetabaseError:
                return LinkViolation(
                    info.name,
                    info.key_of(record),
                    f"{link.target.name} key {link.target.decode_key(value)!r} is already linked "
                    f"by {_holder(info, holder)} (unique link)",
                    field=link.field,
                )

            kinds.append(
                ClaimKind(
                    unique_link_space(info.name, link.field),
                    link.field,
                    link.encoded_keys_of,
                    link_violation,
                    link,
                )
            )
    for index, field in enumerate(info.unique_fields):

        def field_values(record: Any, index: int = index) -> tuple[bytes, ...]:
            return (info.encode_unique(record)[index],)

        def field_violation(
            record: Any, value: bytes, holder: bytes | None, field: str = field
        ) -> NetabaseError:
            shown = getattr(record, field)
            return ValidationError(
                info.name,
                f"value {shown!r} is already used by {_holder(info, holder)}",
                field=field,
                key=info.key_of(record),
                rule="unique",
            )

        kinds.append(
            ClaimKind(
                unique_field_space(info.name, field), field, field_values, field_violation, None
            )
        )
    return tuple(kinds)


def _holder(info: ModelInfo[Any], holder: bytes | None) -> str:
    return (
        "a record you cannot read"
        if holder is None
        else f"{info.name} key {info.decode_key(holder)!r}"
    )


class ClaimRefusal(Exception):
    """A unique value already held, as the enforced view receives it (never shown to callers):
    `redacted` names the holder only if the principal may read it."""

    def __init__(self, kind: ClaimKind, record: Any, value: bytes, holder: bytes) -> None:
        super().__init__("unique value already held")
        self.kind = kind
        self.record = record
        self.value = value
        self.holder = holder

    def redacted(self, readable: bool) -> NetabaseError:
        return self.kind.violation(self.record, self.value, self.holder if readable else None)
