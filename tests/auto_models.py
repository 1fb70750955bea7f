"""Models with generated keys, importable by the worker processes of tests/test_auto_keys.py."""

from __future__ import annotations

import attrs

import netabase


@netabase.model(key="id")
@attrs.frozen
class Ticket:
    title: str = ""
    id: int = netabase.auto()


@netabase.model(key="id")
@attrs.frozen
class Memo:
    text: str
    id: str = netabase.auto()


@netabase.model(key="id")
@attrs.frozen
class Board:
    id: str


@netabase.model(key="id", parent="board", unique=["slug"])
@attrs.frozen
class Card:
    board: str = netabase.link(Board)
    slug: str = ""
    id: int = netabase.auto()


AUTO_MODELS = [Ticket, Memo, Board, Card]
