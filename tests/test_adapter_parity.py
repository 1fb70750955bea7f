"""Every adapter has the surface of the trio class it adapts, member for member (in the style of
trio's ``test_exports``), and the generated adapters are what the generator writes today: a
member added to `Store` alone fails here."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

import attrs
import pytest

import netabase
from netabase.adapters import _generate
from netabase.adapters._asyncio import (
    AsyncioPrincipalView,
    AsyncioTransaction,
    AsyncioTransactionStore,
)
from netabase.adapters._sync import SyncPrincipalView, SyncTransaction, SyncTransactionStore


@attrs.frozen
class Member:
    kind: str  # "attribute", "async", "sync", "async generator", "classmethod", "staticmethod"
    # or "value"
    parameters: tuple[tuple[str, Any, Any, Any], ...]
    returns: Any
    overloads: tuple[tuple[tuple[tuple[str, Any, Any, Any], ...], Any], ...] = ()


def _signature(function: Callable[..., Any]) -> tuple[tuple[tuple[str, Any, Any, Any], ...], Any]:
    signature = inspect.signature(function)
    parameters = tuple(
        (p.name, p.kind, p.default, p.annotation) for p in list(signature.parameters.values())[1:]
    )
    return parameters, signature.return_annotation


def surface(cls: type) -> dict[str, Member]:
    """Public members of ``cls`` (its bases' included) and of its annotated instance attributes."""
    found: dict[str, Member] = {}
    for klass in reversed(cls.__mro__):
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if not name.startswith("_"):
                found[name] = Member("attribute", (), annotation)
    for name in dir(cls):
        if name.startswith("_"):
            continue
        member = inspect.getattr_static(cls, name)
        if isinstance(member, property):
            assert member.fget is not None
            found[name] = Member("attribute", (), _signature(member.fget)[1])
        elif hasattr(member, "func") and hasattr(member, "attrname"):  # functools.cached_property
            found[name] = Member("attribute", (), _signature(member.func)[1])
        elif inspect.isfunction(member):
            parameters, returns = _signature(member)
            overloads = tuple(_signature(o) for o in typing.get_overloads(member))
            kind = "async" if inspect.iscoroutinefunction(member) else "sync"
            if inspect.isasyncgenfunction(member):
                kind = "async generator"  # a trio API method returns its iterator instead
            found[name] = Member(kind, parameters, returns, overloads)
        elif isinstance(member, classmethod | staticmethod):
            parameters, returns = _signature(member.__func__)
            found[name] = Member(type(member).__name__, parameters, returns)
        elif name not in found:  # a constant, a nested class: the generator adapts none
            found[name] = Member("value", (), type(member).__name__)
    return found


def renamed(annotation: Any, prefix: str) -> Any:
    """``annotation`` with the trio classes replaced by their adapters (``Guarded``: the
    enforced store)."""
    if not isinstance(annotation, str):
        return annotation
    if prefix == "Guarded":
        return re.sub(r"\bStore\b", "GuardedStore", annotation)
    names = {"GuardedStore": "Store", "Store": "Store", "Permissions": "Permissions"}
    names.update(PrincipalView="PrincipalView", Database="Database")
    names.update(Transaction="Transaction", TransactionStore="TransactionStore")
    return re.sub(
        r"\b(" + "|".join(names) + r")\b", lambda m: prefix + names[m.group(1)], annotation
    )


def expected(member: Member, prefix: str) -> Member:
    """What ``member`` of a trio class is in an adapter: `Awaitable[T]` becomes `T` and
    `AsyncIterator[T]` becomes `Iterator[T]` for sync code, nothing changes for asyncio."""
    kind, returns = member.kind, renamed(member.returns, prefix)
    if prefix == "Sync":
        if kind == "async":
            kind = "sync"
        if isinstance(returns, str) and returns.startswith("AsyncIterator["):
            returns = returns[len("Async") :]
    overloads = tuple((params, renamed(ret, prefix)) for params, ret in member.overloads)
    return Member(kind, member.parameters, returns, overloads)


def drift(reference: type, adapter: type, prefix: str) -> list[str]:
    """How ``adapter``'s surface differs from ``reference``'s, one line per member."""
    want, have = surface(reference), surface(adapter)
    problems = [f"{adapter.__name__} lacks {name}" for name in sorted(want.keys() - have.keys())]
    problems += [f"{adapter.__name__} adds {name}" for name in sorted(have.keys() - want.keys())]
    for name in sorted(want.keys() & have.keys()):
        wanted = expected(want[name], prefix)
        if name in _generate.CALLER_SIDE and prefix == "Sync":
            # The function argument runs in the caller: a plain function for blocking code.
            parameters = tuple(
                (n, k, d, a.replace("Awaitable[R]", "R") if isinstance(a, str) else a)
                for n, k, d, a in wanted.parameters
            )
            wanted = attrs.evolve(wanted, parameters=parameters)
        if have[name] != wanted:
            problems.append(f"{adapter.__name__}.{name}: {have[name]} != {wanted}")
    return problems


PAIRS = [
    (netabase.Store, netabase.GuardedStore, "Guarded"),
    (netabase.Store, netabase.SyncStore, "Sync"),
    (netabase.Store, netabase.AsyncioStore, "Asyncio"),
    (netabase.Permissions, netabase.SyncPermissions, "Sync"),
    (netabase.Permissions, netabase.AsyncioPermissions, "Asyncio"),
    (netabase.PrincipalView, SyncPrincipalView, "Sync"),
    (netabase.PrincipalView, AsyncioPrincipalView, "Asyncio"),
    (netabase.Database, netabase.SyncDatabase, "Sync"),
    (netabase.Database, netabase.AsyncioDatabase, "Asyncio"),
    (netabase.Transaction, SyncTransaction, "Sync"),
    (netabase.Transaction, AsyncioTransaction, "Asyncio"),
    (netabase.TransactionStore, SyncTransactionStore, "Sync"),
    (netabase.TransactionStore, AsyncioTransactionStore, "Asyncio"),
]


@pytest.mark.parametrize(("reference", "adapter", "prefix"), PAIRS, ids=lambda x: str(x))
def test_each_adapter_has_the_surface_of_what_it_adapts(
    reference: type, adapter: type, prefix: str
) -> None:
    assert surface(reference), reference
    assert drift(reference, adapter, prefix) == []


def test_a_method_added_to_store_only_is_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    class Grown(netabase.Store[Any]):
        async def frobnicate(self, times: int = 1) -> int:
            return times

    for adapter, prefix in [
        (netabase.SyncStore, "Sync"),
        (netabase.AsyncioStore, "Asyncio"),
        (netabase.GuardedStore, "Guarded"),
    ]:
        assert drift(Grown, adapter, prefix) == [f"{adapter.__name__} lacks frobnicate"]

    async def count(self: Any, *, exact: bool = True) -> int:
        return 0

    monkeypatch.setattr(netabase.Store, "count", count)
    assert [line.split(":")[0] for line in drift(netabase.Store, netabase.SyncStore, "Sync")] == [
        "SyncStore.count"
    ]


def test_instance_attributes_are_declared_on_the_class() -> None:
    """The generator sees only annotated attributes: a live database has no other."""
    with netabase.connect_sync("memory://", models=[]) as db:
        for obj in (db._target, db._target.as_principal("ann")):
            public = {name for name in vars(obj) if not name.startswith("_")}
            assert public <= set(surface(type(obj))), type(obj)


@pytest.mark.parametrize("adapter", [SyncPrincipalView, AsyncioPrincipalView])
def test_the_enforced_view_adapters_are_context_managers(adapter: type) -> None:
    names = ("__enter__", "__exit__") if adapter is SyncPrincipalView else ("__aenter__",)
    assert all(name in vars(adapter) for name in names)


def test_the_generated_adapters_are_current() -> None:
    for filename, flavor in _generate.FLAVORS.items():
        committed = (_generate.HERE / filename).read_text()
        assert _generate.render(flavor) == committed, (
            f"netabase/adapters/{filename} is stale: run python -m netabase.adapters._generate"
        )


def test_a_method_added_to_store_is_generated_for_every_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def frobnicate(self: Any, keys: Any, *, times: int = 1) -> int:
        """Frobnicate."""
        return times

    frobnicate.__annotations__ = {"keys": "Iterable[Any]", "times": "int", "return": "int"}
    monkeypatch.setattr(netabase.Store, "frobnicate", frobnicate, raising=False)
    for flavor, head in [(_generate.SYNC, "def"), (_generate.ASYNCIO, "async def")]:
        text = _generate.render(flavor)
        assert f"{head} frobnicate(self, keys: Iterable[Any], *, times: int = 1) -> int:" in text
        assert "listed(model_name(self._target.model), " + '"keys", keys)' in text
        assert text != (_generate.HERE / _generate_file(flavor)).read_text()
    assert _generate.main(["--check"]) == 1


def _generate_file(flavor: _generate.Flavor) -> str:
    return next(name for name, f in _generate.FLAVORS.items() if f == flavor)
