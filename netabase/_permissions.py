"""`Permissions` (``db.permissions``) and the enforced `PrincipalView` (``db.as_principal``).

Arguments are checked in the caller's task (unknown model, bad key, unknown role or action), then
the request goes to the permission actor. See `netabase.permissions` for how
decisions are made and cached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, overload

from . import _validate
from ._errors import (
    CorruptRecord,
    LinkViolation,
    NetabaseError,
    PermissionDenied,
    ValidationError,
    WriteConflict,
)
from ._key_blocks import KeyTaken
from ._keys import encode_str
from ._model import LinkInfo, ModelInfo
from ._requests import DEFAULT_PAGE_SIZE, SKIPPED, Pages, checked_scan
from ._roles import Explanation
from ._store import Loaded, Store, WriteItems
from ._transaction import Transaction, transact
from ._update import DEFAULT_UPDATE_RETRIES, MAX_UPDATE_RETRIES, check_function, run_update
from .actors._calls import send
from .actors._cascade import RemovalPreview, RestrictRefusal
from .actors._claims import ClaimRefusal
from .actors._links import Referrer
from .actors._messages import (
    AddMember,
    Check,
    Explain,
    GrantRole,
    Judge,
    ListObjects,
    Message,
    Peek,
    PlanRemoval,
    RemoveMember,
    RevokeRole,
)
from .actors._permission_spaces import GRANTS_REVISION, MAX_NAME_KEY, META
from .actors._writes import Guard, PutItem, Rejudge, _missing
from .backends import Condition, Expect
from .permissions._queries import Judgement, Obj, Query
from .permissions._queries import parent_of as _parent_of

if TYPE_CHECKING:
    from .actors._routes import Routes

T = TypeVar("T")
R = TypeVar("R")
MAX_PRINCIPAL = MAX_NAME_KEY
MAX_JUDGE_ROUNDS = 8
"""Times an enforced write is judged again after what it was judged on changed."""


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

    def __init__(self, routes: Routes) -> None:
        self._routes = routes
        self._roles = routes.roles

    async def _call(self, message: Message) -> Any:
        routes = self._routes
        return await send(
            routes.permissions,
            message,
            deadlines=routes.deadlines,
            seconds=routes.request_timeout,
        )

    def _object(self, model: type, key: Any) -> tuple[ModelInfo[Any], bytes]:
        info = self._routes.actor_for(model).info
        return info, info.encode_key(key)

    def _query(self, principal: str, action: str, model: type, key: Any) -> Query:
        info, encoded = self._object(model, key)
        self._roles.check_action(action, info.name)
        return (_principal(principal), action, info.name, encoded, None)

    async def grant(self, principal: str, model: type, key: Any, role: str) -> None:
        """Give ``principal`` (a user or a group) ``role`` on a record and everything below it."""
        info, encoded = self._object(model, key)
        await self._call(
            GrantRole(
                _principal(principal),
                info.name,
                encoded,
                _principal(self._roles.check_role(role), "role"),
            )
        )

    async def revoke(self, principal: str, model: type, key: Any, role: str | None = None) -> int:
        """Take back ``role`` (every role when None) on a record; return how many were held."""
        info, encoded = self._object(model, key)
        if role is not None:
            self._roles.check_role(role)
        revoked: int = await self._call(RevokeRole(_principal(principal), info.name, encoded, role))
        return revoked

    async def add_member(self, group: str, member: str) -> None:
        """Make ``member`` (a principal or another group) part of ``group``; cycles are refused."""
        await self._call(AddMember(_principal(group, "group"), _principal(member, "member")))

    async def remove_member(self, group: str, member: str) -> bool:
        removed: bool = await self._call(
            RemoveMember(_principal(group, "group"), _principal(member, "member"))
        )
        return removed

    async def check(self, principal: str, action: str, model: type, key: Any) -> bool:
        """Whether ``principal`` may ``action`` the record; an unknown principal may do nothing."""
        (allowed,) = await self._call(Check([self._query(principal, action, model, key)]))
        return bool(allowed)

    async def check_many(self, queries: Iterable[tuple[str, str, type, Any]]) -> list[bool]:
        """Several checks answered in one actor round (and one revision)."""
        built = []
        for query in _validate.collection("permissions", "queries", queries):
            if not isinstance(query, tuple) or len(query) != 4:
                raise ValidationError(
                    "permissions",
                    "each query must be a (principal, action, model, key) tuple, got "
                    + _validate._shown(query),
                    field="queries",
                )
            built.append(self._query(*query))
        if not built:
            return []
        answers: list[bool] = await self._call(Check(built))
        return answers

    async def check_record(self, principal: str, action: str, record: Any) -> bool:
        """Whether ``principal`` may ``action`` a record as written, under its own parent link
        (for records about to be inserted or moved), by the enforced view's rule for inserts:
        see `GuardedStore.insert_many`."""
        info: ModelInfo[Any] = self._routes.actor_for(type(record)).info
        self._roles.check_action(action, info.name)
        who = _principal(principal)
        key, value = info.encode_record(record)
        item = PutItem(key, value, record, info.encode_links(record) if info.links else ())
        (raw,) = await self._read(info, [key])
        parents = self._routes.schema.hierarchy_parents
        judgements = _put_judgements(who, action, info, {key: item}, {key: raw}, parents)
        answers, _ = await self._judge([judgement for judgement, _ in judgements])
        return all(answers)

    async def _judge(self, items: list[Judgement]) -> tuple[list[bool], Basis]:
        """Answers for ``items``, and what they hold under (see `_pins`)."""
        if not items:
            _, (grants,) = await self._routes.backend.read(META, [GRANTS_REVISION])
            return [], Basis(grants, [])
        answers, grants, chains = await self._call(Judge(items))
        return answers, Basis(grants, chains)

    async def _pins(self, basis: Basis) -> list[Condition] | None:
        """Conditions under which judgements made on ``basis`` still hold: no grant or
        membership changed, and every stored ancestor they went by is as it is now (its bytes,
        read here, still naming the parent the judgement took); None if one already changed.
        Moves elsewhere in the hierarchy leave them standing."""
        models = self._routes.schema.models
        objects = list(dict.fromkeys(obj for chain in basis.chains for obj in chain))
        by_model: dict[str, list[bytes]] = {}
        for name, key in objects:
            by_model.setdefault(name, []).append(key)
        raws: dict[Obj, bytes | None] = {}
        for name, keys in by_model.items():
            values = await self._read(models[name], keys)
            raws.update(((name, key), raw) for key, raw in zip(keys, values, strict=True))
        for chain in basis.chains:
            for index, (name, key) in enumerate(chain):
                record = _decoded(models[name], key, raws[(name, key)])
                parent = None if record is None else _parent_of(models[name], record)
                if parent != (chain[index + 1] if index + 1 < len(chain) else None):
                    return None
        pins: list[Condition] = [Expect(META, GRANTS_REVISION, basis.grants)]
        pins.extend(Expect(models[name].space, key, raw) for (name, key), raw in raws.items())
        return pins

    async def _read(self, info: ModelInfo[Any], keys: list[bytes]) -> list[bytes | None]:
        """Stored bytes of ``keys``, from one snapshot: what an enforced write is judged on."""
        _, values = await self._routes.backend.read(info.space, keys)
        return values

    async def explain(self, principal: str, action: str, model: type, key: Any) -> Explanation:
        """The decision with its reason: the group path, the grant and the record path."""
        explanation: Explanation = await self._call(
            Explain(self._query(principal, action, model, key))
        )
        return explanation

    def list_objects(
        self, principal: str, action: str, model: type[T], *, page_size: int = 100
    ) -> AsyncIterator[Any]:
        """Every key of ``model`` that ``principal`` may ``action``, in key order, fetched a
        page at a time; the cursor is the last key returned, so pages never repeat or skip.

        The arguments are checked here, before the first page is asked for."""
        info = self._routes.actor_for(model).info
        self._roles.check_action(action, info.name)
        size = _validate.page_size("permissions", page_size)
        return _KeyPages(self, _principal(principal), action, info, size)


class Basis(NamedTuple):
    """What a batch of judgements held under: the grants token and the stored chains."""

    grants: bytes | None
    chains: list[tuple[Obj, ...]]


class PrincipalView:
    """The database as one principal sees it: every store access is checked first."""

    principal: str

    def __init__(self, routes: Routes, principal: str, permissions: Permissions) -> None:
        self._routes = routes
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

    def transaction(self) -> Transaction:
        """A transaction as this principal: every record it reads needs ``read``, every write
        is judged as the enforced stores judge it, and the commit applies only while every
        judgement still holds (see `Database.transaction`)."""
        from ._tx_guard import TransactionGuard  # it builds on this module

        return Transaction(self._routes, TransactionGuard(self.principal, self._permissions))

    async def transact(self, fn: Callable[..., Awaitable[R]], *args: Any, retries: int = 10) -> R:
        """`Database.transact` as this principal."""
        return await transact(self.transaction, fn, args, retries)

    def store(self, model: type[T]) -> GuardedStore[T]:
        routes = self._routes
        actor = routes.actor_for(model)
        store = Store(routes, actor, actor.info, timeout=routes.request_timeout)
        return GuardedStore(store, actor.info, self.principal, self._permissions)


class GuardedStore(Generic[T]):
    """A `Store` that raises `PermissionDenied` unless the principal may read / write.

    Its errors name only records the principal may read. A write is judged on the stored bytes
    of every record it judges and on the permission revision, and commits only while they are
    unchanged; otherwise it is judged again (at most `MAX_JUDGE_ROUNDS` times).
    """

    def __init__(
        self, store: Store[T], info: ModelInfo[T], principal: str, permissions: Permissions
    ) -> None:
        self._store = store
        self._info = info
        self._principal = principal
        self._permissions = permissions

    @overload
    async def get(self, key: Any, *, load: None = None) -> T | None: ...

    @overload
    async def get(self, key: Any, *, load: Sequence[str]) -> Loaded[T] | None: ...

    async def get(self, key: Any, *, load: Sequence[str] | None = None) -> T | Loaded[T] | None:
        """Needs ``read`` on the record (see `get_many`); each record ``load`` fetches is judged
        as read too, and one the principal may not read is None, like a missing one."""
        fields = None if load is None else self._store._load_fields(load)
        (record,) = await self.get_many([key])
        if fields is None or record is None:
            return record
        return await self._store._load(record, fields, self._readable_targets)

    async def get_many(self, keys: Iterable[Any]) -> list[T | None]:
        """Needs ``read`` on each record as it is read (judged on that record and its parent,
        so one that moved meanwhile is never handed out from where it was); a record rewritten
        before the judgement was made is read and judged again."""
        info = self._info
        wanted = list(_validate.collection(info.name, "keys", keys))
        encoded = [info.encode_key(key) for key in wanted]
        try:
            records: list[Any] = await self._store.get_many(wanted)
        except CorruptRecord:  # which of them, and whether it may be said: read them as they are
            records = await self._peek(encoded)
        records, answers = await self._judged_reads(encoded, records)
        for key, ok in zip(wanted, answers, strict=True):
            if not ok:
                raise PermissionDenied(self._principal, "read", info.name, key)
        for record in records:
            if isinstance(record, CorruptRecord):
                raise record
        return records

    async def get_versioned(self, key: Any) -> tuple[T | None, int]:
        """Needs ``read`` on the record, as `get`; the version is that of the record judged."""
        info = self._info
        encoded = info.encode_key(key)
        for _ in range(MAX_JUDGE_ROUNDS):
            try:
                record, version = await self._store.get_versioned(key)
            except CorruptRecord as corrupt:
                (peeked,) = await self._peek([encoded])
                _, (ok,) = await self._judged_reads([encoded], [peeked])
                if not ok:
                    raise PermissionDenied(self._principal, "read", info.name, key) from None
                raise corrupt from None
            (judged,), (ok,) = await self._judged_reads([encoded], [record])
            if not ok:
                raise PermissionDenied(self._principal, "read", info.name, key)
            if judged is record:  # judged as read at this version, not re-read meanwhile
                return record, version
        raise WriteConflict(info.name, MAX_JUDGE_ROUNDS, key=key)

    async def _peek(self, keys: list[bytes], info: ModelInfo[Any] | None = None) -> list[Any]:
        """The records under ``keys`` of this model (or ``info``'s): None if absent,
        `CorruptRecord` if undecodable."""
        name = (info or self._info).name
        found: list[Any] = await self._permissions._routes.ask(name, Peek(keys))
        return found

    async def _judged_reads(
        self, keys: list[bytes], records: list[Any], info: ModelInfo[Any] | None = None
    ) -> tuple[list[Any], list[bool]]:
        """``records`` (read under ``keys``) and whether the principal may read each, judged on
        one state: the judgement sees the grants and ancestors of its moment, so the records it
        allows are read again after it and all are judged again if one was rewritten meanwhile
        (else a record rewritten, then published by moving its parent, would be handed out as it
        was). ``info``: the model of ``keys`` when it is not this store's."""
        info = info or self._info
        for _ in range(MAX_JUDGE_ROUNDS):
            answers, _ = await self._permissions._judge(
                [_as_read(self._principal, info, k, r) for k, r in zip(keys, records, strict=True)]
            )
            again = await self._peek(keys, info)
            readable = zip(records, again, answers, strict=True)
            if all(_same(info, a, b) for a, b, ok in readable if ok):
                return records, answers  # what is refused was refused on the record as read
            records = again
        raise WriteConflict(info.name, MAX_JUDGE_ROUNDS)

    # writes

    async def insert(
        self, record: T, *, if_absent: bool = False, if_version: int | None = None
    ) -> T:
        """Needs what `insert_many` needs; ``if_absent`` / ``if_version`` as on `Store.insert`.
        Returns the record as stored (its key generated if it is ``netabase.auto()``)."""
        absent, version = self._store._conditions(if_absent, if_version)
        key = getattr(record, self._info.key_field, None)
        write = self._write(False, key, absent, version)
        (stored,) = await self._store._inserted([record], write, version)
        return stored

    async def insert_many(self, records: Iterable[T], *, if_absent: bool = False) -> list[T]:
        """Needs ``write`` on each record as stored, if it exists; and, to create it or move it
        to another parent, a grant of ``write`` where it will be (allow rules do not apply
        there); require rules must hold on it as stored and as written; and ``read`` on every
        record a link newly names (an unreadable one is reported as missing). Returns the
        records as stored."""
        absent, _ = self._store._conditions(if_absent, None)
        wanted = list(_validate.collection(self._info.name, "records", records))
        if not wanted:
            return []
        return await self._store._inserted(wanted, self._write(True, None, absent))

    async def update(
        self,
        key: Any,
        fn: Callable[[T | None], T],
        *,
        retries: int = DEFAULT_UPDATE_RETRIES,
    ) -> T:
        """Needs ``read`` on the record as read and what `insert` needs to write the result,
        judged again on every attempt; otherwise as `Store.update`."""
        name = self._info.name
        check_function(name, fn)
        count = _validate.integer(name, "retries", retries, maximum=MAX_UPDATE_RETRIES)
        return await run_update(
            self._permissions._routes.update_queues,
            self._info,
            key,
            fn,
            count,
            self.get_versioned,
            self.insert,
            alone=True,
        )

    def _write(
        self, many: bool, key: object, if_absent: bool = False, if_version: int | None = None
    ) -> WriteItems:
        async def write(items: list[PutItem], fresh: frozenset[bytes]) -> None:
            await self._insert(items, many, key, fresh, if_absent, if_version)

        return write

    async def _insert(
        self,
        items: list[PutItem],
        many: bool,
        key: object,
        fresh: frozenset[bytes],
        if_absent: bool = False,
        if_version: int | None = None,
    ) -> None:
        for _ in range(MAX_JUDGE_ROUNDS):
            guard = await self._judge_insert(items, fresh)
            if guard is None:
                continue
            try:
                await self._store._put(items, many, guard, key, if_absent, if_version)
                return
            except Rejudge:
                continue
            except ClaimRefusal as refusal:
                raise await self._claim_redacted(refusal, items) from None
        raise WriteConflict(self._info.name, MAX_JUDGE_ROUNDS)

    async def _claim_redacted(self, refusal: ClaimRefusal, items: list[PutItem]) -> NetabaseError:
        """The unique violation, naming its holder only if the principal may read it (or wrote
        it in the same call)."""
        holder = refusal.holder
        if any(item[0] == holder for item in items):
            return refusal.redacted(True)
        (raw,) = await self._permissions._read(self._info, [holder])
        (readable,), _ = await self._permissions._judge(
            [_stored(self._principal, "read", self._info, holder, raw)]
        )
        return refusal.redacted(readable)

    async def _judge_insert(self, items: list[PutItem], fresh: frozenset[bytes]) -> Guard | None:
        """The conditions the insert was allowed on (None: they changed while judged); the
        guard pins the ``fresh`` (generated) keys absent, and `KeyTaken` says one is not."""
        info, principal, permissions = self._info, self._principal, self._permissions
        latest = {item.key: item for item in items}  # a key given twice: the last record wins
        keys = list(latest)
        stored = dict(zip(keys, await permissions._read(info, keys), strict=True))
        if any(stored[key] is not None for key in fresh):
            raise KeyTaken()
        parents = permissions._routes.schema.hierarchy_parents
        writes = _put_judgements(principal, "write", info, latest, stored, parents)
        targets = _new_targets(info, latest, stored)
        reads, pins = await self._target_judgements(targets)
        answers, basis = await permissions._judge([j for j, _ in writes] + reads)
        for (_, record), ok in zip(writes, answers, strict=False):
            if not ok:
                raise PermissionDenied(principal, "write", info.name, info.key_of(record))
        for (link, target_key, record), ok in zip(targets, answers[len(writes) :], strict=True):
            if not ok:
                raise _missing(info, record, link, target_key)  # as if it did not exist
        expects = await permissions._pins(basis)
        if expects is None:
            return None
        expects.extend(Expect(info.space, key, raw) for key, raw in stored.items())
        expects.extend(pins)
        return Guard(tuple(expects))

    async def _target_judgements(
        self, targets: list[tuple[LinkInfo, bytes, Any]]
    ) -> tuple[list[Judgement], list[Condition]]:
        """``read`` on each newly linked target; those whose model has read rules are judged
        on their stored bytes, which the write then pins."""
        rules = self._permissions._routes.schema.rules
        ruled: dict[str, list[bytes]] = {}
        for link, target_key, _ in targets:
            if (link.target.name, "read") in rules:
                ruled.setdefault(link.target.name, []).append(target_key)
        raws: dict[Obj, bytes | None] = {}
        for name, keys in ruled.items():
            model = self._permissions._routes.schema.models[name]
            unique = list(dict.fromkeys(keys))
            values = await self._permissions._read(model, unique)
            raws.update(((name, key), raw) for key, raw in zip(unique, values, strict=True))
        judgements = []
        for link, target_key, _ in targets:
            target = link.target
            if (target.name, target_key) in raws:
                raw = raws[(target.name, target_key)]
                judgements.append(_stored(self._principal, "read", target, target_key, raw))
            else:
                obj = (target.name, target_key)
                judgements.append(
                    Judgement(
                        self._principal, "read", target.name, target_key, "existing", None, (), obj
                    )
                )
        pins: list[Condition] = [
            Expect(self._permissions._routes.schema.models[name].space, key, raw)
            for (name, key), raw in raws.items()
        ]
        return judgements, pins

    async def remove(self, key: Any) -> bool:
        removed: bool = await self._remove([self._info.encode_key(key)], False, key)
        return removed

    async def remove_many(self, keys: Iterable[Any]) -> int:
        """Needs ``write`` on each record removed and on every record the removal deletes
        (cascade) or rewrites (set_null), each as stored."""
        wanted = list(_validate.collection(self._info.name, "keys", keys))
        encoded = [self._info.encode_key(key) for key in wanted]
        if not encoded:
            return 0
        removed: int = await self._remove(encoded, True, None)
        return removed

    async def _remove(self, keys: list[bytes], many: bool, key: object) -> Any:
        for _ in range(MAX_JUDGE_ROUNDS):
            judged = await self._judge_removal(keys)
            if judged is None:
                continue
            guard, origins = judged
            try:
                return await self._store._remove(keys, many, guard, key)
            except Rejudge:
                continue
            except RestrictRefusal as refusal:
                raise await self._redacted(refusal, origins) from None
        raise WriteConflict(self._info.name, MAX_JUDGE_ROUNDS)

    async def _judge_removal(self, keys: list[bytes]) -> tuple[Guard, dict[Obj, bytes]] | None:
        """The conditions the removal was allowed on, and the removed key each judged record is
        reached from (None: the conditions changed while judged). What it would touch comes
        from the store actor's own planner (`PlanRemoval`), judged on the bytes it read."""
        info, principal, permissions = self._info, self._principal, self._permissions
        unique = list(dict.fromkeys(keys))
        preview: RemovalPreview = await self._store._call(PlanRemoval(unique))
        models = permissions._routes.schema.models
        records = preview.records
        judgements = [_stored(principal, "write", models[r.model], r.key, r.value) for r in records]
        answers, basis = await permissions._judge(judgements)
        for removed, ok in zip(records[: len(unique)], answers[: len(unique)], strict=True):
            if not ok:
                raise PermissionDenied(principal, "write", info.name, info.decode_key(removed.key))
        for r, ok in zip(records[len(unique) :], answers[len(unique) :], strict=True):
            if not ok:
                raise await self._touch_denied(models[r.model], r.key, r.value, r.origin)
        origins = {(r.model, r.key): r.origin for r in records}
        if preview.refusal is not None:
            raise await self._redacted(preview.refusal, origins)
        expects = await permissions._pins(basis)
        if expects is None:
            return None
        expects.extend(Expect(models[r.model].space, r.key, r.value) for r in records)
        return Guard(tuple(expects), frozenset(origins)), origins

    async def _touch_denied(
        self, model: ModelInfo[Any], key: bytes, raw: bytes | None, origin: bytes
    ) -> PermissionDenied:
        """Refusal for a record the removal would delete or rewrite: named if readable, else
        reported on the removed record it is reached from."""
        (readable,), _ = await self._permissions._judge(
            [_stored(self._principal, "read", model, key, raw)]
        )
        if readable:
            return PermissionDenied(self._principal, "write", model.name, model.decode_key(key))
        error = PermissionDenied(
            self._principal, "write", self._info.name, self._info.decode_key(origin)
        )
        error.args = (
            f"{error}: removing it would delete or rewrite a record {self._principal!r} "
            "may not read",
        )
        return error

    async def _redacted(self, refusal: RestrictRefusal, origins: dict[Obj, bytes]) -> LinkViolation:
        """The restrict refusal naming only the referrers the principal may read."""
        known = [b for b in refusal.blocking if b.known]
        judgements = []
        for blocker in known:
            model = self._permissions._routes.schema.models[blocker.source]
            (raw,) = await self._permissions._read(model, [blocker.source_key])
            judgements.append(_stored(self._principal, "read", model, blocker.source_key, raw))
        answers, _ = await self._permissions._judge(judgements)
        readable = {(b.source, b.source_key) for b, ok in zip(known, answers, strict=True) if ok}
        first = min(refusal.blocking, key=lambda b: (b.source, b.field, b.source_key))
        origin = origins.get((first.target.name, first.target_key))
        if origin is None:  # reached by a cascade found after the walk: the first removed key
            origin = next(iter(origins.values()))
        return refusal.redacted(readable, (self._info.name, self._info.decode_key(origin)))

    # reads

    def scan(
        self,
        *,
        start: Any = None,
        stop: Any = None,
        prefix: Any = None,
        limit: int | None = None,
        reverse: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        skip_corrupt: bool = False,
    ) -> AsyncIterator[T]:
        """Like `Store.scan`, yielding only the records the principal may read; ``limit``
        counts those readable records, not the ones skipped. An unreadable corrupt record is
        skipped like any unreadable one; a readable one raises `CorruptRecord` (unless
        ``skip_corrupt``)."""
        return checked_scan(
            self._info,
            self._readable_page,
            start=start,
            stop=stop,
            prefix=prefix,
            limit=limit,
            reverse=reverse,
            page_size=page_size,
            skip_corrupt=skip_corrupt,
            filtered=True,
        )

    async def _readable_page(
        self, lo: bytes, hi: bytes | None, limit: int, reverse: bool
    ) -> list[tuple[bytes, Any]]:
        """A page of the store, each record judged as it was read: the ones the principal may
        not read (or that were removed meanwhile) are `SKIPPED`, keeping the page's length."""
        page = await self._store._fetch_page(lo, hi, limit, reverse)
        if not page:
            return page
        keys = [key for key, _ in page]
        records, answers = await self._judged_reads(keys, [record for _, record in page])
        shown = zip(keys, records, answers, strict=True)
        return [(k, r if ok and r is not None else SKIPPED) for k, r, ok in shown]

    # the rest of `Store`'s surface, judged like the reads above

    @property
    def model(self) -> type[T]:
        return self._store.model

    def with_options(
        self, *, timeout: float | None = None, block: bool | None = None
    ) -> GuardedStore[T]:
        """This view with another deadline or mailbox policy for its store requests (see
        `Store.with_options`); permission requests keep the database's."""
        store = self._store.with_options(timeout=timeout, block=block)
        return GuardedStore(store, self._info, self._principal, self._permissions)

    async def contains(self, key: Any) -> bool:
        """Whether a record the principal may read is under ``key``, judged on it as read: an
        unreadable one answers False, exactly like a missing one."""
        info = self._info
        encoded = info.encode_key(key)
        try:
            records: list[Any] = await self._store.get_many([key])
        except CorruptRecord:  # judged on itself alone, as `get_many` judges it
            records = await self._peek([encoded])
        records, (ok,) = await self._judged_reads([encoded], records)
        return ok and records[0] is not None

    async def count(self) -> int:
        """Number of records the principal may read (a readable corrupt one included). Unlike
        `Store.count` it reads and judges every record of the model, a page at a time, so it
        costs a full scan."""

        async def counted(
            lo: bytes, hi: bytes | None, limit: int, reverse: bool
        ) -> list[tuple[bytes, Any]]:
            page = await self._readable_page(lo, hi, limit, reverse)
            return [(key, r if r is SKIPPED else True) for key, r in page]  # corrupt ones too

        pages: Pages[bool] = Pages(counted, b"", None, None, False, DEFAULT_PAGE_SIZE, False, True)
        return sum([1 async for _ in pages])

    async def referrers(
        self, key: Any, model: type | None = None, field: str | None = None
    ) -> list[Referrer]:
        """Like `Store.referrers`, keeping only the referring records the principal may read,
        each judged as read and kept only if, as judged, it still links to ``key`` (one gone or
        unlinked meanwhile is left out: its link may have been made while it was hidden)."""
        entries = await self._store.referrers(key, model, field)
        routes = self._permissions._routes
        target = self._info.encode_key(key)
        encoded = [routes.schema.models[entry.model].encode_key(entry.key) for entry in entries]
        wanted: dict[str, list[bytes]] = {}
        for entry, source_key in zip(entries, encoded, strict=True):
            wanted.setdefault(entry.model, []).append(source_key)
        judged: dict[Obj, Any] = {}
        for name, keys in wanted.items():
            info = routes.schema.models[name]
            unique = list(dict.fromkeys(keys))
            peeked = await self._peek(unique, info)
            records, answers = await self._judged_reads(unique, peeked, info)
            judged.update(
                ((name, k), r if ok else None)
                for k, r, ok in zip(unique, records, answers, strict=True)
            )
        return [
            entry
            for entry, k in zip(entries, encoded, strict=True)
            if _links_to(routes, entry, judged[(entry.model, k)], target)
        ]

    async def _readable_targets(self, info: ModelInfo[Any], keys: list[Any]) -> list[Any]:
        """The records under ``keys`` as read, None for each the principal may not read (as for
        a missing one); a readable corrupt one raises `CorruptRecord`."""
        routes = self._permissions._routes
        encoded = [info.encode_key(key) for key in keys]
        options = self._store._timeout, self._store._block  # this view's `with_options`
        store: Store[Any] = Store(
            routes, routes.actor_for(info.name), info, timeout=options[0], block=options[1]
        )
        try:
            records: list[Any] = await store.get_many(keys)
        except CorruptRecord:  # which of them, and whether it may be said: read them as they are
            records = await routes.ask(info.name, Peek(encoded))
        view = GuardedStore(store, info, self._principal, self._permissions)
        records, answers = await view._judged_reads(encoded, records)
        readable = [r if ok else None for r, ok in zip(records, answers, strict=True)]
        for record in readable:
            if isinstance(record, CorruptRecord):
                raise record
        return readable


class _KeyPages:
    """`Permissions.list_objects`: a class, not an async generator, so one left unfinished
    needs no finalizing (a sync caller has no way to ``aclose`` it)."""

    def __init__(
        self, permissions: Permissions, principal: str, action: str, info: ModelInfo[Any], size: int
    ) -> None:
        self._ask = (permissions, principal, action, info, size)
        self._cursor: bytes | None = None
        self._page: list[bytes] = []
        self._index = 0
        self._done = False

    def __aiter__(self) -> _KeyPages:
        return self

    async def __anext__(self) -> Any:
        permissions, principal, action, info, size = self._ask
        while self._index >= len(self._page):
            if self._done:
                raise StopAsyncIteration
            query = ListObjects(principal, action, info.name, self._cursor, size)
            self._page, self._index = await permissions._call(query), 0
            self._done = len(self._page) < size
            if self._page:
                self._cursor = self._page[-1]
        self._index += 1
        return info.decode_key(self._page[self._index - 1])


def _links_to(routes: Routes, entry: Referrer, record: Any, target: bytes) -> bool:
    """Whether ``record`` (None: unreadable or gone) links to ``target`` through the entry's
    field; a corrupt one cannot tell and is kept, as `Store.referrers` keeps it."""
    if record is None:
        return False
    if isinstance(record, CorruptRecord):
        return True
    try:
        link = routes.schema.link_index[(entry.model, entry.field)]
        return target in link.encoded_keys_of(record)
    except NetabaseError:
        return False


def _same(info: ModelInfo[Any], before: Any, after: Any) -> bool:
    """Whether a record read twice is unchanged (both absent, or both undecodable, count)."""
    if before is None or after is None or isinstance(before, CorruptRecord):
        return before is after or (isinstance(after, CorruptRecord) and before is not None)
    if isinstance(after, CorruptRecord):
        return False
    return bool(before is after or before == after) or (
        info.codec.encode(before) == info.codec.encode(after)
    )


def _decoded(info: ModelInfo[Any], key: bytes, raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return info.codec.decode(raw, key)
    except CorruptRecord:
        return None


def _existing(
    principal: str,
    action: str,
    info: ModelInfo[Any],
    key: bytes,
    record: Any,
    mode: str = "existing",
) -> Judgement:
    """``action`` on a record as it is (None: absent or undecodable, judged on itself)."""
    if isinstance(record, CorruptRecord):
        record = None
    above = None if record is None else _parent_of(info, record)
    obj = (info.name, key)
    return Judgement(principal, action, info.name, key, mode, record, (obj,), above)


def _as_read(principal: str, info: ModelInfo[Any], key: bytes, record: Any) -> Judgement:
    """``read`` on a record as it was read (a `CorruptRecord` is judged on itself alone)."""
    return _existing(principal, "read", info, key, record)


def _stored(
    principal: str,
    action: str,
    info: ModelInfo[Any],
    key: bytes,
    raw: bytes | None,
    mode: str = "existing",
) -> Judgement:
    """``action`` on a record as stored, from its bytes (``raw`` None: absent)."""
    return _existing(principal, action, info, key, _decoded(info, key, raw), mode)


def _put_judgements(
    principal: str,
    action: str,
    info: ModelInfo[Any],
    latest: dict[bytes, PutItem],
    stored: dict[bytes, bytes | None],
    parents: Iterable[str],
) -> list[tuple[Judgement, Any]]:
    """The judgements writing ``latest`` over ``stored`` needs, each with its record.

    Moving a record of a model some model names as its parent (``parents``) moves everything
    below it too, so that needs a grant on the record's chain: an allow rule on the record
    alone does not reach the records below it."""
    index = None if info.parent is None else info.links.index(info.parent)
    carries = info.name in parents
    out: list[tuple[Judgement, Any]] = []
    for key, (_, _, record, links) in latest.items():
        raw = stored[key]
        old_links = info.stored_links(_decoded(info, key, raw))
        moved = old_links is None or (
            index is not None and set(old_links[index]) != set(links[index])
        )
        if raw is not None:
            mode = "create" if moved and carries else "existing"
            out.append((_stored(principal, action, info, key, raw, mode), record))
        if moved:
            path, above = _destination(info, key, latest, index)
            judgement = Judgement(principal, action, info.name, key, "create", record, path, above)
        else:
            obj = (info.name, key)
            judgement = Judgement(
                principal, action, info.name, key, "require", record, (obj,), None
            )
        out.append((judgement, record))
    return out


def _destination(
    info: ModelInfo[Any], key: bytes, latest: dict[bytes, PutItem], index: int | None
) -> tuple[tuple[Obj, ...], Obj | None]:
    """Where a record will be: itself, then the parents written by the same call, then the
    first stored parent (None when it will be top-level: judged on itself alone)."""
    path: list[Obj] = [(info.name, key)]
    if index is None or info.parent is None:
        return tuple(path), None
    target = info.parent.target
    parents = latest[key].links[index]
    while parents:
        parent = parents[0]
        if target is not info or parent not in latest:
            return tuple(path), (target.name, parent)
        if (info.name, parent) in path:
            return tuple(path), None  # a cycle: the write is refused as one
        path.append((info.name, parent))
        parents = latest[parent].links[index]
    return tuple(path), None


def _new_targets(
    info: ModelInfo[Any], latest: dict[bytes, PutItem], stored: dict[bytes, bytes | None]
) -> list[tuple[LinkInfo, bytes, Any]]:
    """(link, target key, record naming it) for each record a link names that the stored
    record did not name in any of its links, except records written by the same call."""
    out: list[tuple[LinkInfo, bytes, Any]] = []
    seen: set[Obj] = set()
    for key, (_, _, record, links) in latest.items():
        old_links = info.stored_links(_decoded(info, key, stored[key])) or ()
        old = {
            (each.target.name, k)
            for each, ks in zip(info.links, old_links, strict=False)
            for k in ks
        }
        for index, link in enumerate(info.links):
            for target_key in links[index]:
                obj = (link.target.name, target_key)
                if obj in old or obj in seen:
                    continue
                if link.target is info and target_key in latest:
                    continue
                seen.add(obj)
                out.append((link, target_key, record))
    return out
