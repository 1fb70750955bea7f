"""`Schema`: what the registered models say, computed once when a database is opened (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from . import _layout
from ._errors import ModelDefinitionError
from ._model import LinkInfo, ModelInfo, info_of
from ._roles import Roles, lookup_condition

Rules = Mapping[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]]
"""(model, action) -> (conditions that allow it, conditions it requires)."""


@attrs.frozen
class Schema:
    """The models of one open database and what follows from them; never changes."""

    models: Mapping[str, ModelInfo[Any]]
    link_index: Mapping[tuple[str, str], LinkInfo]
    """(source model, field) -> the link."""
    restrict_probes: Mapping[str, frozenset[str]]
    """Models whose removal the first referrers may refuse, with their cascade reach."""
    hierarchy_parents: frozenset[str]
    """Models some model names as its parent: their removal can change permissions."""
    rules: Rules
    spaces: tuple[str, ...]
    """Every backend keyspace the database uses: the models', the permissions', the schema's."""

    @classmethod
    def from_models(cls, models: Iterable[type], roles: Roles | None = None) -> Schema:
        """Check ``models`` (`ModelDefinitionError` naming the model) and derive the rest."""
        registered = _register(models)
        link_index = {
            (info.name, link.field): link for info in registered.values() for link in info.links
        }
        spaces = [space for info in registered.values() for space in _layout.model_spaces(info)]
        return cls(
            models=registered,
            link_index=link_index,
            restrict_probes=restrict_probes(link_index),
            hierarchy_parents=frozenset(
                info.parent.target.name for info in registered.values() if info.parent is not None
            ),
            rules=_rules(registered, roles or Roles()),
            spaces=(
                *spaces,
                *_layout.PERMISSION_SPACES,
                _layout.SCHEMA_SPACE,
                *([_layout.KEYS_SPACE] if any(i.auto is int for i in registered.values()) else []),
            ),
        )


def restrict_probes(links: Mapping[tuple[str, str], LinkInfo]) -> dict[str, frozenset[str]]:
    """Per model whose removal a restrict link can refuse at once: the models that removal may
    delete by cascade (a restrict referrer among those might go too, so it refuses nothing).
    A model absent here goes straight to the full walk."""
    probes: dict[str, frozenset[str]] = {}
    for name in {link.target.name for link in links.values()}:
        reach, frontier = {name}, [name]
        while frontier:
            target = frontier.pop()
            for (source, _), link in links.items():
                cascades = link.target.name == target and link.on_delete == "cascade"
                if cascades and source not in reach:
                    reach.add(source)
                    frontier.append(source)
        if any(
            link.target.name == name and link.on_delete == "restrict" and source not in reach
            for (source, _), link in links.items()
        ):
            probes[name] = frozenset(reach)
    return probes


def _rules(models: Mapping[str, ModelInfo[Any]], roles: Roles) -> Rules:
    table: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for info in models.values():
        for rule in info.rules:
            roles.check_action(rule.action, info.name)
            if lookup_condition(rule.condition) is None:
                raise ModelDefinitionError(
                    info.name,
                    f"rule {rule.kind}({rule.action!r}, when={rule.condition!r}) names a condition "
                    "that is not registered (use @netabase.condition)",
                )
            allows, requires = table.setdefault((info.name, rule.action), ([], []))
            (allows if rule.kind == "allow" else requires).append(rule.condition)
    return {key: (tuple(a), tuple(r)) for key, (a, r) in table.items()}


def _register(models: Iterable[type]) -> dict[str, ModelInfo[Any]]:
    registered: dict[str, ModelInfo[Any]] = {}
    for cls in models:
        info: ModelInfo[Any] | None = info_of(cls)
        if info is None:
            name = getattr(cls, "__name__", repr(cls))
            raise ModelDefinitionError(
                name, "is not a netabase model (decorate it with @netabase.model)"
            )
        other = registered.get(info.name)
        if other is not None and other.cls is not cls:
            raise ModelDefinitionError(
                info.name,
                f"two registered classes share the model name {info.name!r}; give one name=...",
            )
        registered[info.name] = info
    for info in registered.values():
        for link in info.links:
            if registered.get(link.target.name) is not link.target:
                raise ModelDefinitionError(
                    info.name,
                    f"links to {link.target.name}, which is not in models=[...]; register it too",
                    field=link.field,
                )
    return registered
