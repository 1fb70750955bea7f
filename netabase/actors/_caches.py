"""`CacheCoordinator`: what one store actor's write changes in the other actors' caches.

A cascade or set_null applied by one actor deletes or rewrites records of other models; their
actors' record caches and every actor's link-validation cache must follow before the write is
answered, and a changed parent link makes the permission actor's caches stale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store_actor import StoreActor


class CacheCoordinator:
    """The cache hooks store actors call on each other; built by the runtime."""

    __slots__ = ("_permissions_changed", "_stores")

    def __init__(
        self, stores: Mapping[str, StoreActor], permissions_changed: Callable[[], None]
    ) -> None:
        self._stores = stores
        self._permissions_changed = permissions_changed

    def discard(self, model: str, key: bytes) -> None:
        self._stores[model].cache.discard(key)

    def store(self, model: str, key: bytes, value: bytes, record: Any) -> None:
        actor = self._stores[model]
        actor.cache.store(key, value if actor.decode_cached else record)

    def after_write(self, model: str, versions: Mapping[str, tuple[int, int]]) -> None:
        """Move ``model``'s cache to the version the write left its space at, if it wrote it."""
        actor = self._stores[model]
        version = versions.get(actor.info.space)
        if version is not None:
            actor.cache.after_write(*version)

    def forget_links(self, model: str, keys: list[bytes]) -> None:
        """Drop deleted keys of ``model`` from every actor's link-validation cache."""
        for actor in self._stores.values():
            actor.planner.links_cache.forget(model, keys)

    def permissions_changed(self) -> None:
        """A write of this process changed what permission checks may answer."""
        self._permissions_changed()
