"""`SchemaFacts`: what the registered models say, computed once when the runtime is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._model import LinkInfo, ModelInfo

Rules = Mapping[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]]
"""(model, action) -> (conditions that allow it, conditions it requires)."""


@attrs.frozen
class SchemaFacts:
    """The models of one open database and what follows from them; never changes."""

    models: Mapping[str, ModelInfo[Any]]
    link_index: Mapping[tuple[str, str], LinkInfo]
    """(source model, field) -> the link."""
    restrict_probes: Mapping[str, frozenset[str]]
    """Models whose removal the first referrers may refuse, with their cascade reach."""
    hierarchy_parents: frozenset[str]
    """Models some model names as its parent: their removal can change permissions."""
    rules: Rules
