"""Planning a transaction's writes with the store actors' own planners, on its `TxView`.

Each ``insert``/``remove`` inside a transaction is planned when it is made, as the store actor
would plan it (links checked, unique values claimed, cascades and set_null walked), but reading
through the view: it sees the transaction's earlier writes, and what it reads joins the read
set. Its operations are then staged in the view; the conditions a planner attaches are
dropped, because the read set they were derived from is already part of the commit's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from .._model import ModelInfo
from ..backends import Op
from ._links import LinkCache
from ._mailbox import Request
from ._messages import Exists, Insert, Message, Peek, Remove
from ._writes import Guard, PutItem, WritePlanner

if TYPE_CHECKING:
    from .._schema import Schema
    from ._config import RuntimeConfig
    from ._store_actor import StoreActor
    from ._tx_view import TxView

ENFORCED = Guard(())
"""Planned for the enforced view: refusals come as `ClaimRefusal` / `RestrictRefusal`, which it
redacts to what the principal may read."""


class _Planning:
    """The parts of a store actor its planner reads, pointed at a transaction's view."""

    def __init__(
        self, info: ModelInfo[Any], schema: Schema, config: RuntimeConfig, view: TxView
    ) -> None:
        self.info = info
        self.schema = schema
        self.config = config
        self.backend = view
        self._view = view

    async def ask(self, model: str, message: Exists | Peek) -> Any:
        target = self.schema.models[model]
        keys = list(message.keys)
        if isinstance(message, Exists):
            return await self._view.exists(target.space, keys)
        _, values = await self._view.read(target.space, keys)
        return [
            None if raw is None else target.codec.decode(raw, key)
            for key, raw in zip(keys, values, strict=True)
        ]


class TxWrites:
    """The write planners of one transaction, one per model it writes."""

    def __init__(self, schema: Schema, config: RuntimeConfig, view: TxView) -> None:
        self._schema = schema
        self._config = config
        self._view = view
        self._planners: dict[str, WritePlanner] = {}

    def _planner(self, info: ModelInfo[Any]) -> WritePlanner:
        planner = self._planners.get(info.name)
        if planner is None:
            context = _Planning(info, self._schema, self._config, self._view)
            planner = self._planners[info.name] = WritePlanner(cast("StoreActor", context))
            # No link-validation cache: a target the transaction removes later must be seen
            # missing by its later writes, and the view's reads are cheap and recorded.
            planner.links_cache = LinkCache(0)
        return planner

    async def plan(self, info: ModelInfo[Any], message: Message) -> tuple[Sequence[Op], Any]:
        """The operations of one write and its reply; its refusal is raised."""
        (plan,) = await self._planner(info).plan([Request(message)])
        if plan.error is not None:
            raise plan.error
        return (() if plan.batch is None else plan.batch.ops), plan.reply

    async def insert(
        self,
        info: ModelInfo[Any],
        items: list[PutItem],
        many: bool,
        guard: Guard | None,
        if_absent: bool = False,
    ) -> None:
        ops, _ = await self.plan(info, Insert(items, many, guard, if_absent))
        self._view.stage(ops)

    async def plan_remove(
        self, info: ModelInfo[Any], keys: list[bytes], many: bool, guard: Guard | None
    ) -> tuple[Sequence[Op], Any]:
        return await self.plan(info, Remove(keys, many, guard))
