"""Roles and the actions they allow; and the shapes of permission answers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

import attrs

from ._errors import UnknownAction

Condition = Callable[[str, Any], bool]
C = TypeVar("C", bound=Callable[[str, Any], bool])
_CONDITIONS: dict[str, Condition] = {}


def register_condition(name: str, fn: Condition) -> None:
    """Make ``fn(principal, record) -> bool`` usable by name in `allow` / `require` rules."""
    if not name or not isinstance(name, str):
        raise ValueError(f"a condition needs a non-empty name, got {name!r}")
    if not callable(fn):
        raise TypeError(f"condition {name!r} must be callable, got {fn!r}")
    if inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"condition {name!r} is async; conditions run inside the permission actor and must "
            "be plain functions returning True or False"
        )
    _CONDITIONS[name] = fn


def condition(name: str) -> Callable[[C], C]:
    """Decorator form of `register_condition`."""

    def register(fn: C) -> C:
        register_condition(name, fn)
        return fn

    return register


def lookup_condition(name: str) -> Condition | None:
    return _CONDITIONS.get(name)


@attrs.frozen
class Rule:
    """A model's permission rule on one action, decided by a named condition."""

    kind: Literal["allow", "require"]
    action: str
    condition: str


def allow(action: str, *, when: str) -> Rule:
    """Grant ``action`` on a stored record, without any grant, when condition ``when`` holds on
    it; never a place to create or move a record to (that needs a grant there)."""
    return Rule("allow", action, when)


def require(action: str, *, when: str) -> Rule:
    """Allow ``action`` on a record (granted or allowed) only while condition ``when`` holds
    (for an enforced write: on the record as stored and as written)."""
    return Rule("require", action, when)


DEFAULT_ROLES: dict[str, tuple[str, ...]] = {
    "read": ("read",),
    "write": ("read", "write"),
    "admin": ("read", "write", "admin"),
}
"""Ordered levels: each role implies the ones below it."""


class Roles:
    """A role -> actions table; ``Roles()`` is the default read < write < admin ladder."""

    def __init__(self, table: Mapping[str, Iterable[str]] | None = None) -> None:
        source = DEFAULT_ROLES if table is None else table
        self.table: dict[str, frozenset[str]] = {}
        for role, actions in source.items():
            if not isinstance(role, str) or not role:
                raise ValueError(f"role names must be non-empty strings, got {role!r}")
            chosen = frozenset(actions)
            if not chosen or not all(isinstance(a, str) and a for a in chosen):
                raise ValueError(f"role {role!r} must allow at least one non-empty action name")
            self.table[role] = chosen
        self.actions = frozenset().union(*self.table.values())

    def __repr__(self) -> str:
        return f"Roles({ {r: sorted(a) for r, a in self.table.items()} })"

    def check_role(self, role: str) -> str:
        if role not in self.table:
            raise UnknownAction(role, self.table)
        return role

    def check_action(self, action: str, model: str | None = None) -> str:
        if action not in self.actions:
            raise UnknownAction(action, sorted(self.actions), model=model)
        return action

    def allows(self, role: str, action: str) -> bool:
        actions = self.table.get(role)
        return actions is not None and action in actions


@attrs.frozen
class Grant:
    """A role given to a principal on one record (and everything below it)."""

    principal: str
    model: str
    key: Any
    role: str


@attrs.frozen
class Explanation:
    """Why a check came out as it did: the group path, the grant, and the record path."""

    principal: str
    action: str
    model: str
    key: Any
    allowed: bool
    groups: tuple[str, ...] = ()
    """From the principal to the principal holding the grant (inclusive)."""
    grant: Grant | None = None
    objects: tuple[tuple[str, Any], ...] = ()
    """From the granted record down to the checked one (inclusive)."""
    condition: str | None = None
    """The condition that allowed access (an `allow` rule) or refused it (a `require` rule)."""
    error: str | None = None
    """What a condition raised, if one did (access is then refused)."""

    def __str__(self) -> str:
        target = f"{self.model} {self.key!r}"
        if self.error is not None:
            return f"{self.principal!r} may not {self.action!r} {target}: {self.error}"
        if not self.allowed and self.condition is not None:
            return (
                f"{self.principal!r} may not {self.action!r} {target}: "
                f"condition {self.condition!r} does not hold"
            )
        if self.allowed and self.grant is None:
            return (
                f"{self.principal!r} may {self.action!r} {target}: "
                f"condition {self.condition!r} holds"
            )
        if not self.allowed or self.grant is None:
            return f"{self.principal!r} may not {self.action!r} {target}: no grant applies"
        via = " -> ".join(repr(g) for g in self.groups)
        path = " -> ".join(f"{m} {k!r}" for m, k in self.objects)
        return (
            f"{self.principal!r} may {self.action!r} {target}: {via} holds {self.grant.role!r} "
            f"on {self.grant.model} {self.grant.key!r}; record path {path}"
        )
