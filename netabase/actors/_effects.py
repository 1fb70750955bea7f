"""`CacheEffects`: the cache changes an applied write makes in every actor it concerns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._caches import CacheCoordinator


class CacheEffects:
    """Cache changes to make, in every actor they concern, once a batch is applied."""

    __slots__ = ("deleted", "discards", "permissions", "stores")

    def __init__(self) -> None:
        self.stores: list[tuple[str, bytes, bytes, Any]] = []
        self.discards: list[tuple[str, bytes]] = []
        self.deleted: dict[str, list[bytes]] = {}
        self.permissions = False
        """Whether the batch rewrote the permission revision (a parent link changed)."""

    def store(self, model: str, key: bytes, value: bytes, record: Any) -> None:
        self.stores.append((model, key, value, record))

    def discard(self, model: str, key: bytes) -> None:
        self.discards.append((model, key))

    def delete(self, model: str, key: bytes) -> None:
        self.discards.append((model, key))
        self.deleted.setdefault(model, []).append(key)

    def apply(self, caches: CacheCoordinator, versions: Mapping[str, tuple[int, int]]) -> None:
        """Make the changes, moving each written model's cache to the version ``versions`` give."""
        touched = set()
        for model, key in self.discards:
            caches.discard(model, key)
            touched.add(model)
        for model, key, value, record in self.stores:
            caches.store(model, key, value, record)
            touched.add(model)
        for model, keys in self.deleted.items():
            caches.forget_links(model, keys)
        for model in touched:
            caches.after_write(model, versions)
        if self.permissions:
            caches.permissions_changed()
