"""Permissions inside a transaction: ``db.as_principal(p).transaction()``.

Every record the transaction reads is judged for ``read`` as the transaction read it, every
write for ``write`` as the enforced view judges it (on the record as the transaction sees it,
and for a removal on every record its cascade deletes or set_null rewrites). What a judgement
went by (the grants revision, the stored ancestors) joins the transaction's read set, so the
commit applies only while every judgement still holds: reads, writes and permissions are
serializable together. Errors name only records the principal may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._errors import PermissionDenied, TransactionConflict
from ._model import ModelInfo
from ._permissions import (
    GuardedStore,
    Permissions,
    PrincipalView,
    _as_read,
    _new_targets,
    _put_judgements,
    _stored,
)
from .actors._cascade import RestrictRefusal
from .actors._claims import ClaimRefusal
from .actors._writes import PutItem, _missing
from .backends import Delete, Op, Put
from .backends._base import matches

if TYPE_CHECKING:
    from .actors._tx_view import TxView

MAX_PIN_ROUNDS = 8


class TransactionGuard:
    """The judgements of one principal's transaction, made through `Permissions`."""

    def __init__(self, principal: str, permissions: Permissions) -> None:
        self.principal = principal
        self._permissions = permissions

    def _store(self, info: ModelInfo[Any]) -> GuardedStore[Any]:
        routes = self._permissions._routes
        return PrincipalView(routes, self.principal, self._permissions).store(info.cls)

    async def _pinned(self, view: TxView, judgements: list[Any]) -> list[bool]:
        """Answers for ``judgements``; what they went by joins the read set."""
        permissions = self._permissions
        for _ in range(MAX_PIN_ROUNDS):
            answers, basis = await permissions._judge(judgements)
            pins = await permissions._pins(basis)
            if pins is not None:
                view.pin(pins)
                return answers
        raise TransactionConflict(None, detail=" (permissions kept changing while judged)")

    async def readable(
        self, view: TxView, info: ModelInfo[Any], keys: Sequence[bytes], records: Sequence[Any]
    ) -> list[bool]:
        """Whether the principal may read each record, as the transaction read it."""
        if not keys:
            return []
        judgements = [
            _as_read(self.principal, info, key, record)
            for key, record in zip(keys, records, strict=True)
        ]
        answers = await self._pinned(view, judgements)
        await self._still_stored(view, info, keys, answers)
        return answers

    async def _still_stored(
        self, view: TxView, info: ModelInfo[Any], keys: Sequence[bytes], answers: list[bool]
    ) -> None:
        """`TransactionConflict` if a record judged readable (on the ancestors and grants of
        now) is no longer stored as the snapshot has it: its old version, judged on today's
        hierarchy, may never have been readable (rewritten, then published by a move)."""
        staged = view.staged.get(info.space, {})
        wanted = [key for key, ok in zip(keys, answers, strict=True) if ok and key not in staged]
        if not wanted:
            return
        _, live = await self._permissions._routes.backend.read(info.space, wanted)
        for key, value in zip(wanted, live, strict=True):
            if not matches(value, view.seen.get((info.space, key))):
                raise TransactionConflict(None, detail=" (a record it read changed since)")

    async def check_reads(
        self, view: TxView, info: ModelInfo[Any], keys: Sequence[bytes], records: Sequence[Any]
    ) -> None:
        """`PermissionDenied` for the first record the principal may not read."""
        answers = await self.readable(view, info, keys, records)
        for key, ok in zip(keys, answers, strict=True):
            if not ok:
                raise PermissionDenied(self.principal, "read", info.name, info.decode_key(key))

    async def check_insert(self, view: TxView, info: ModelInfo[Any], items: list[PutItem]) -> None:
        """``write`` on each record as the transaction sees it stored, and ``read`` on every
        record a link newly names (an unreadable one is reported as missing)."""
        latest = {item.key: item for item in items}
        keys = list(latest)
        _, raws = await view.read(info.space, keys)
        stored = dict(zip(keys, raws, strict=True))
        parents = self._permissions._routes.schema.hierarchy_parents
        writes = _put_judgements(self.principal, "write", info, latest, stored, parents)
        targets = _new_targets(info, latest, stored)
        raws = await _read_each(view, [(link.target, key) for link, key, _ in targets])
        reads = [
            _stored(self.principal, "read", link.target, target_key, raw)
            for (link, target_key, _), raw in zip(targets, raws, strict=True)
        ]
        answers = await self._pinned(view, [j for j, _ in writes] + reads)
        for (_, record), ok in zip(writes, answers, strict=False):
            if not ok:
                raise PermissionDenied(self.principal, "write", info.name, info.key_of(record))
        for (link, target_key, record), ok in zip(targets, answers[len(writes) :], strict=True):
            if not ok:
                raise _missing(info, record, link, target_key)

    async def claim_refused(
        self, info: ModelInfo[Any], refusal: ClaimRefusal, items: list[PutItem]
    ) -> Exception:
        """The unique violation, naming the holder only if the principal may read it."""
        return await self._store(info)._claim_redacted(refusal, items)

    async def restrict_refused(
        self, info: ModelInfo[Any], refusal: RestrictRefusal, keys: list[bytes]
    ) -> Exception:
        """The restrict refusal, naming only the referrers the principal may read."""
        origins = {(info.name, key): key for key in keys}
        return await self._store(info)._redacted(refusal, origins)

    async def check_removal(
        self, view: TxView, info: ModelInfo[Any], keys: list[bytes], ops: Sequence[Op]
    ) -> None:
        """``write`` on each removed record and on every record the removal's plan (``ops``)
        deletes or rewrites, each as the transaction sees it."""
        models = {model.space: model for model in self._permissions._routes.schema.models.values()}
        touched: dict[tuple[str, bytes], ModelInfo[Any]] = {}
        for op in ops:
            model = models.get(op.space)
            if model is not None and isinstance(op, Delete | Put):
                touched[(model.name, op.key)] = model
        removed = {(info.name, key) for key in keys}
        order = [(info, key) for key in dict.fromkeys(keys)]
        order += [(model, obj[1]) for obj, model in touched.items() if obj not in removed]
        raws = await _read_each(view, order)
        judgements = [
            _stored(self.principal, "write", model, key, raw)
            for (model, key), raw in zip(order, raws, strict=True)
        ]
        answers = await self._pinned(view, judgements)
        for (model, key), raw, ok in zip(order, raws, answers, strict=True):
            if ok:
                continue
            if (model.name, key) in removed:
                raise PermissionDenied(self.principal, "write", model.name, model.decode_key(key))
            (readable,) = await self._pinned(
                view, [_stored(self.principal, "read", model, key, raw)]
            )
            if readable:
                raise PermissionDenied(self.principal, "write", model.name, model.decode_key(key))
            error = PermissionDenied(self.principal, "write", info.name, info.decode_key(keys[0]))
            error.args = (
                f"{error}: removing it would delete or rewrite a record {self.principal!r} "
                "may not read",
            )
            raise error

    def conflict(self) -> TransactionConflict:
        """A conflict that names nothing (what changed may be unreadable to the principal)."""
        return TransactionConflict(None)


async def _read_each(
    view: TxView, objects: Sequence[tuple[ModelInfo[Any], bytes]]
) -> list[bytes | None]:
    """The bytes of each (model, key) as the transaction sees them, one read per model."""
    wanted: dict[str, tuple[ModelInfo[Any], list[bytes]]] = {}
    for model, key in objects:
        wanted.setdefault(model.name, (model, []))[1].append(key)
    found: dict[tuple[str, bytes], bytes | None] = {}
    for name, (model, keys) in wanted.items():
        unique = list(dict.fromkeys(keys))
        _, values = await view.read(model.space, unique)
        found.update(((name, key), raw) for key, raw in zip(unique, values, strict=True))
    return [found[(model.name, key)] for model, key in objects]
