"""Models of the versions tests, importable by the processes they start."""

from __future__ import annotations

import attrs

import netabase


@netabase.model(key="name")
@attrs.frozen
class Counter:
    name: str
    n: int = 0


@netabase.model(key="id", unique=["email"])
@attrs.frozen
class Profile:
    id: int
    email: str = ""


VERSION_MODELS = [Counter, Profile]
