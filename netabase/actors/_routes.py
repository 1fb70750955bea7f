"""`Routes`: what the facades reach one open database's actors through, and nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .._key_blocks import KeyBlocks
    from .._roles import Roles
    from .._schema import Schema
    from .._update import UpdateQueues
    from ..backends import Backend
    from ._caches import CacheCoordinator
    from ._config import RuntimeConfig
    from ._deadlines import Deadlines
    from ._leases import SnapshotLeases
    from ._mailbox import Mailbox
    from ._messages import Exists, Peek
    from ._store_actor import StoreActor


@attrs.frozen
class Routes:
    """Built by the `Runtime` for `Store`, `Permissions`, `PrincipalView`, `GuardedStore` and
    `Transaction`: the schema facts, the way to each actor, and the deadlines requests are sent
    under."""

    schema: Schema
    backend: Backend
    """For the stored bytes an enforced write is judged on (one snapshot per read)."""
    deadlines: Deadlines
    request_timeout: float
    """The database's default seconds per request."""
    actor_for: Callable[[type | str], StoreActor]
    """The store actor of a model (class or name); `UnknownModel` if not registered."""
    ask: Callable[[str, Exists | Peek], Awaitable[Any]]
    """Ask a model's query lane (its records as they are, never cached)."""
    permissions: Mailbox
    """The permission actor's mailbox."""
    roles: Roles
    caches: CacheCoordinator
    """Where a committed transaction's writes reach this process's caches."""
    leases: SnapshotLeases
    """Transactions' open snapshots, closed at their deadlines."""
    config: RuntimeConfig
    """The database's settings (a transaction's timeout and size limit)."""
    is_closing: Callable[[], bool]
    """Whether the database has stopped taking requests."""
    key_blocks: Mapping[str, KeyBlocks]
    """Per model with generated int keys, the blocks its inserts take keys from."""
    update_queues: UpdateQueues = attrs.field(factory=dict)
    """Updates of one key queue here, to be served together (see `netabase._update`)."""
