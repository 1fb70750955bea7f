"""What the permission actor is asked about: records, check queries, judgements."""

from __future__ import annotations

from typing import Any, NamedTuple

from .._errors import CorruptRecord
from .._model import ModelInfo

Obj = tuple[str, bytes]
"""A record's identity: model name and encoded key."""

Query = tuple[str, str, str, bytes, "Obj | None"]
"""principal, action, model, encoded key, and optionally the parent to assume (new records)."""


class Judgement(NamedTuple):
    """A decision on a record in a stated state (the enforced view's writes judge these).

    ``mode`` "existing": a grant on its chain or an allow rule, then its require rules;
    "create" (a record put where it is not yet, or moved with the records below it): a grant
    on its chain only, since allow rules widen access to the records that exist, one at a time,
    and never give a place to put one, then the require rules; "require": the require rules
    alone.
    """

    principal: str
    action: str
    model: str
    key: bytes
    mode: str
    record: Any
    """The record judged (None: absent or undecodable)."""
    path: tuple[Obj, ...]
    """The record and the ancestors given with it (written by the same call), nearest first."""
    above: Obj | None
    """The first ancestor taken as stored: its stored chain follows ``path`` (None: it ends)."""


def parent_of(info: ModelInfo[Any], record: Any) -> Obj | None:
    """The record its parent link names (None: a root, no hierarchy, or undecodable)."""
    if info.parent is None or isinstance(record, CorruptRecord):
        return None
    keys = info.parent.encoded_keys_of(record)
    return (info.parent.target.name, keys[0]) if keys else None
