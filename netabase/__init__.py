"""netabase: an actor-based concurrent record store for trio and anyio.

Declare records as attrs classes with `model` (and `link` fields), then::

    async with netabase.open("lmdb://./data", models=[Customer, Order]) as db:
        await db.store(Order).insert(Order(id=1, customer="c1"))

From asyncio use `open_asyncio`, from synchronous code `connect_sync`: same typed API.
"""

from ._asyncio import (
    AsyncioDatabase,
    AsyncioPermissions,
    AsyncioPrincipalView,
    AsyncioStore,
    AsyncioTransaction,
    AsyncioTransactionStore,
    open_asyncio,
)
from ._auto import auto
from ._database import Database, DatabaseStats
from ._database import open_database as open
from ._errors import (
    ActorCrashed,
    AlreadyExists,
    BackendUnavailable,
    Closed,
    ConditionError,
    CorruptRecord,
    HierarchyCycle,
    InvalidURL,
    KeyTooLarge,
    LinkViolation,
    ModelDefinitionError,
    NetabaseError,
    Overloaded,
    PermissionDenied,
    RequestTimeout,
    RuntimeFailed,
    SchemaMismatch,
    TransactionConflict,
    TransactionError,
    TransactionTimeout,
    TransactionTooLarge,
    UnknownAction,
    UnknownModel,
    ValidationError,
    WriteConflict,
)
from ._indexes import IndexInfo, field
from ._model import LinkInfo, ModelInfo, info_of, link, model
from ._permissions import GuardedStore, Permissions, PrincipalView
from ._roles import Explanation, Grant, Roles, Rule, allow, condition, register_condition, require
from ._store import Loaded, Store
from ._sync import (
    SyncDatabase,
    SyncPermissions,
    SyncPrincipalView,
    SyncStore,
    SyncTransaction,
    SyncTransactionStore,
    connect_sync,
)
from ._transaction import Transaction, TransactionStore
from .actors._links import Referrer
from .actors._stats import ActorStats
from .backends import register_backend

__all__ = [
    "ActorCrashed",
    "ActorStats",
    "AlreadyExists",
    "AsyncioDatabase",
    "AsyncioPermissions",
    "AsyncioPrincipalView",
    "AsyncioStore",
    "AsyncioTransaction",
    "AsyncioTransactionStore",
    "BackendUnavailable",
    "Closed",
    "ConditionError",
    "CorruptRecord",
    "Database",
    "DatabaseStats",
    "Explanation",
    "Grant",
    "GuardedStore",
    "HierarchyCycle",
    "IndexInfo",
    "InvalidURL",
    "KeyTooLarge",
    "LinkInfo",
    "LinkViolation",
    "Loaded",
    "ModelDefinitionError",
    "ModelInfo",
    "NetabaseError",
    "Overloaded",
    "PermissionDenied",
    "Permissions",
    "PrincipalView",
    "Referrer",
    "RequestTimeout",
    "Roles",
    "Rule",
    "RuntimeFailed",
    "SchemaMismatch",
    "Store",
    "SyncDatabase",
    "SyncPermissions",
    "SyncPrincipalView",
    "SyncStore",
    "SyncTransaction",
    "SyncTransactionStore",
    "Transaction",
    "TransactionConflict",
    "TransactionError",
    "TransactionStore",
    "TransactionTimeout",
    "TransactionTooLarge",
    "UnknownAction",
    "UnknownModel",
    "ValidationError",
    "WriteConflict",
    "allow",
    "auto",
    "condition",
    "connect_sync",
    "field",
    "info_of",
    "link",
    "model",
    "open",
    "open_asyncio",
    "register_backend",
    "register_condition",
    "require",
]
