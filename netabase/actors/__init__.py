"""The actor runtime: store actors, their supervisor, mailboxes, caches and statistics."""

from ._config import RuntimeConfig
from ._stats import ActorStats

__all__ = ["ActorStats", "RuntimeConfig"]
