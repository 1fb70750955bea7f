"""`Permissions` (``db.permissions``) and the enforced `PrincipalView` (``db.as_principal``).

Arguments are checked in the caller's task (unknown model, bad key, unknown role or action), then
the request goes to the permission actor. See `netabase.actors._permission_actor` for how
decisions are made and cached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._errors import PermissionDenied, ValidationError
from ._keys import encode_str
from ._model import ModelInfo
from ._roles import Explanation
from ._store import Store
from .actors._calls import call
from .actors._permission_spaces import MAX_NAME_KEY

if TYPE_CHECKING:
    from .actors._runtime import Runtime

T = TypeVar("T")
MAX_PRINCIPAL = MAX_NAME_KEY


def _principal(name: object, field: str = "principal") -> str:
    """``name`` if it is a usable principal, group or role name: any two of them and a record
    id must fit one backend key, so its encoding (a NUL takes two bytes) has a size limit."""
    if not isinstance(name, str) or not name:
        raise ValidationError(
            "permissions", f"{field} must be a non-empty str, got {name!r}", field=field
        )
    try:
        size = len(encode_str(name))
    except UnicodeEncodeError:
        raise ValidationError(
            "permissions", f"{field} {name!r} is not valid UTF-8 text", field=field
        ) from None
    if size > MAX_PRINCIPAL:
        raise ValidationError(
            "permissions",
            f"{field} {name[:40]!r}... takes {size} bytes as a key (a NUL counts twice), "
            f"more than {MAX_PRINCIPAL}",
            field=field,
        )
    return name


class Permissions:
    """Grants, group memberships and hierarchical access checks."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._actor = runtime.permissions
        self._roles = runtime.permissions.roles

    async def _call(self, kind: str, args: Any) -> Any:
        runtime = self._runtime
        return await call(
            self._actor.mailbox,
            runtime.deadlines,
            "permissions",
            kind,
            args,
            None,
            runtime.config.request_timeout,
            True,
        )

    def _object(self, model: type, key: Any) -> tuple[ModelInfo[Any], bytes]:
        info = self._runtime.actor_for(model).info
        return info, info.encode_key(key)

    def _query(self, principal: str, action: str, model: type, key: Any) -> tuple[Any, ...]:
        info, encoded = self._object(model, key)
        self._roles.check_action(action, info.name)
        return (_principal(principal), action, info.name, encoded, None)

    async def grant(self, principal: str, model: type, key: Any, role: str) -> None:
        """Give ``principal`` (a user or a group) ``role`` on a record and everything below it."""
        info, encoded = self._object(model, key)
        await self._call(
            "grant",
            (
                _principal(principal),
                info.name,
                encoded,
                _principal(self._roles.check_role(role), "role"),
            ),
        )

    async def revoke(self, principal: str, model: type, key: Any, role: str | None = None) -> int:
        """Take back ``role`` (every role when None) on a record; return how many were held."""
        info, encoded = self._object(model, key)
        if role is not None:
            self._roles.check_role(role)
        revoked: int = await self._call("revoke", (_principal(principal), info.name, encoded, role))
        return revoked

    async def add_member(self, group: str, member: str) -> None:
        """Make ``member`` (a principal or another group) part of ``group``; cycles are refused."""
        await self._call("add_member", (_principal(group, "group"), _principal(member, "member")))

    async def remove_member(self, group: str, member: str) -> bool:
        removed: bool = await self._call(
            "remove_member", (_principal(group, "group"), _principal(member, "member"))
        )
        return removed

    async def check(self, principal: str, action: str, model: type, key: Any) -> bool:
        """Whether ``principal`` may ``action`` the record; an unknown principal may do nothing."""
        (allowed,) = await self._call("check", ([self._query(principal, action, model, key)], {}))
        return bool(allowed)

    async def check_many(self, queries: Iterable[tuple[str, str, type, Any]]) -> list[bool]:
        """Several checks answered in one actor round (and one revision)."""
        built = [self._query(*query) for query in queries]
        if not built:
            return []
        answers: list[bool] = await self._call("check", (built, {}))
        return answers

    async def check_record(self, principal: str, action: str, record: Any) -> bool:
        """Whether ``principal`` may ``action`` a record as written, under its own parent link
        (for records about to be inserted or moved)."""
        model = type(record)
        info = self._runtime.actor_for(model).info
        encoded = info.encode_key(info.key_of(record))
        self._roles.check_action(action, info.name)
        parent = None
        if info.parent is not None:
            keys = info.parent.encoded_keys_of(record)
            # No parent: the record is (or becomes) top-level and is judged on itself alone;
            # naming itself as its parent ends its chain there instead of at the stored one.
            parent = (info.parent.target.name, keys[0]) if keys else (info.name, encoded)
        query = (_principal(principal), action, info.name, encoded, parent)
        (allowed,) = await self._call("check", ([query], {(info.name, encoded): record}))
        return bool(allowed)

    async def affected_by_removal(
        self, info: ModelInfo[Any], keys: list[Any]
    ) -> list[tuple[ModelInfo[Any], Any]]:
        """The records removing ``keys`` would delete by cascade or rewrite by set_null."""
        runtime = self._runtime
        affected: list[tuple[ModelInfo[Any], Any]] = []
        seen: set[tuple[str, Any]] = set()
        frontier = [(info, key) for key in keys]
        while frontier:
            target, key = frontier.pop()
            store: Store[Any] = Store(
                runtime.actors[target.name], target, timeout=runtime.config.request_timeout
            )
            for referrer in await store.referrers(key):
                link = runtime.link_index.get((referrer.model, referrer.field))
                if link is None or link.on_delete == "restrict":
                    continue  # restrict refuses the removal on its own
                source = runtime.models[referrer.model]
                if (referrer.model, referrer.key) in seen:
                    continue
                seen.add((referrer.model, referrer.key))
                affected.append((source, referrer.key))
                if link.on_delete == "cascade":
                    frontier.append((source, referrer.key))
        return affected

    async def explain(self, principal: str, action: str, model: type, key: Any) -> Explanation:
        """The decision with its reason: the group path, the grant and the record path."""
        explanation: Explanation = await self._call(
            "explain", self._query(principal, action, model, key)
        )
        return explanation

    async def list_objects(
        self, principal: str, action: str, model: type[T], *, page_size: int = 100
    ) -> AsyncIterator[Any]:
        """Every key of ``model`` that ``principal`` may ``action``, in key order, fetched a
        page at a time; the cursor is the last key returned, so pages never repeat or skip."""
        info = self._runtime.actor_for(model).info
        self._roles.check_action(action, info.name)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValidationError(
                "permissions",
                f"page_size must be a positive int, got {page_size!r}",
                field="page_size",
            )
        cursor: bytes | None = None
        while True:
            page: list[bytes] = await self._call(
                "list", (_principal(principal), action, info.name, cursor, page_size)
            )
            for key in page:
                yield info.decode_key(key)
            if len(page) < page_size:
                return
            cursor = page[-1]


class PrincipalView:
    """The database as one principal sees it: every store access is checked first."""

    def __init__(self, runtime: Runtime, principal: str, permissions: Permissions) -> None:
        self._runtime = runtime
        self.principal = _principal(principal)
        self._permissions = permissions

    async def __aenter__(self) -> PrincipalView:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def store(self, model: type[T]) -> GuardedStore[T]:
        actor = self._runtime.actor_for(model)
        store = Store(actor, actor.info, timeout=self._runtime.config.request_timeout)
        return GuardedStore(store, actor.info, self.principal, self._permissions)


class GuardedStore(Generic[T]):
    """A `Store` that raises `PermissionDenied` unless the principal may read / write."""

    def __init__(
        self, store: Store[T], info: ModelInfo[T], principal: str, permissions: Permissions
    ) -> None:
        self._store = store
        self._info = info
        self._principal = principal
        self._permissions = permissions

    async def _require(self, action: str, keys: Sequence[Any]) -> None:
        model = self._info.cls
        allowed = await self._permissions.check_many(
            [(self._principal, action, model, key) for key in keys]
        )
        for key, ok in zip(keys, allowed, strict=True):
            if not ok:
                raise PermissionDenied(self._principal, action, self._info.name, key)

    async def get(self, key: Any) -> T | None:
        await self._require("read", [key])
        return await self._store.get(key)

    async def get_many(self, keys: Iterable[Any]) -> list[T | None]:
        wanted = list(keys)
        await self._require("read", wanted)
        return await self._store.get_many(wanted)

    async def insert(self, record: T) -> None:
        await self.insert_many([record])

    async def insert_many(self, records: Iterable[T]) -> None:
        """Needs ``write`` on each record where it will be, and where it is now if it exists."""
        batch = list(records)
        for record in batch:
            self._info.check(record)
            if not await self._permissions.check_record(self._principal, "write", record):
                key = self._info.key_of(record)
                raise PermissionDenied(self._principal, "write", self._info.name, key)
        existing = [self._info.key_of(r) for r in batch]
        present = [
            k
            for k, r in zip(existing, await self._store.get_many(existing), strict=True)
            if r is not None
        ]
        await self._require("write", present)
        await self._store.insert_many(batch)

    async def remove(self, key: Any) -> bool:
        await self._require_removal([key])
        return await self._store.remove(key)

    async def remove_many(self, keys: Iterable[Any]) -> int:
        wanted = list(keys)
        await self._require_removal(wanted)
        return await self._store.remove_many(wanted)

    async def _require_removal(self, keys: list[Any]) -> None:
        """Needs ``write`` on the records removed and on every record the removal would delete
        (cascade) or rewrite (set_null), found through the reverse index."""
        await self._require("write", keys)
        affected = await self._permissions.affected_by_removal(self._info, keys)
        allowed = await self._permissions.check_many(
            [(self._principal, "write", info.cls, key) for info, key in affected]
        )
        for (info, key), ok in zip(affected, allowed, strict=True):
            if not ok:
                raise PermissionDenied(self._principal, "write", info.name, key)

    async def scan(self, *, limit: int | None = None, **options: Any) -> AsyncIterator[T]:
        """Like `Store.scan`, yielding only the records the principal may read; ``limit``
        counts those readable records, not the ones skipped."""
        if limit is not None and limit < 0:
            raise ValidationError(self._info.name, f"limit must not be negative, got {limit}")
        if limit == 0:
            return
        left = limit
        page: list[T] = []
        async for record in self._store.scan(**options):
            page.append(record)
            if len(page) >= 100:
                for allowed in await self._readable(page):
                    yield allowed
                    if left is not None and (left := left - 1) == 0:
                        return
                page = []
        for allowed in await self._readable(page):
            yield allowed
            if left is not None and (left := left - 1) == 0:
                return

    async def _readable(self, records: list[T]) -> list[T]:
        if not records:
            return []
        key_of = self._info.key_of
        answers = await self._permissions.check_many(
            [(self._principal, "read", self._info.cls, key_of(r)) for r in records]
        )
        return [r for r, ok in zip(records, answers, strict=True) if ok]
